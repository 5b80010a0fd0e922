// A scratch directory for one test, removed with its contents when the test
// ends.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace embedapt::testing {

// Creates a fresh, empty directory named after `name`, the process id and a
// per-process counter (so concurrent test processes and repeated names never
// share one) under EMBEDAPT_BINARY_DIR/test_tmp, or the system temp directory
// when the tests are built without EMBEDAPT_BINARY_DIR. The destructor
// removes it; a directory that must outlive this object (e.g. one a forked
// child still writes to) needs another helper.
class TempDir {
 public:
  explicit TempDir(const std::string& name) {
    static std::atomic<int> counter{0};
#ifdef EMBEDAPT_BINARY_DIR
    const std::filesystem::path base = std::filesystem::path(EMBEDAPT_BINARY_DIR) / "test_tmp";
#else
    const std::filesystem::path base = std::filesystem::temp_directory_path();
#endif
    path = base / (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `file` inside the directory.
  std::string operator/(const std::string& file) const { return (path / file).string(); }

  std::filesystem::path path;
};

}  // namespace embedapt::testing
