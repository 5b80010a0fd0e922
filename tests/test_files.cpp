// write_file_atomic: crash-safe replacement of a file, and what it does with
// paths that are not plain files.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "core/common/files.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using embedapt::read_file;
using embedapt::write_file_atomic;

TEST_CASE("write_file_atomic replaces a file and leaves no temporary behind", "[files]") {
  const embedapt::testing::TempDir dir("files");
  const std::string root = dir.path.string(), path = root + "/out.json";
  REQUIRE(write_file_atomic(path, "first").ok());
  REQUIRE(write_file_atomic(path, "second").ok());
  std::string text;
  REQUIRE(read_file(path, &text).ok());
  CHECK(text == "second");
  CHECK_FALSE(fs::exists(path + ".tmp"));
  CHECK(write_file_atomic(root, "x").code() == embedapt::Code::kIOError);  // a directory
  CHECK(write_file_atomic(root + "/no/such/dir/f", "x").code() == embedapt::Code::kIOError);
}

TEST_CASE("write_file_atomic writes through a symlink and into a FIFO instead of replacing them", "[files]") {
  // Renaming over the path replaced a symlink with a file (its target left
  // as it was) and a FIFO or device node with a file (as root, --json
  // /dev/full replaced the device).
  const embedapt::testing::TempDir dir("files");
  const std::string root = dir.path.string(), target = root + "/real.json", alias = root + "/link.json";
  REQUIRE(write_file_atomic(target, "old").ok());
  fs::create_symlink(target, alias);
  REQUIRE(write_file_atomic(alias, "new").ok());
  CHECK(fs::is_symlink(alias));
  std::string text;
  REQUIRE(read_file(target, &text).ok());
  CHECK(text == "new");

  const std::string dangling = root + "/dangling.json";  // a link to a file not there yet
  fs::create_symlink(root + "/later.json", dangling);
  REQUIRE(write_file_atomic(dangling, "made").ok());
  CHECK(fs::is_symlink(dangling));
  REQUIRE(read_file(root + "/later.json", &text).ok());
  CHECK(text == "made");

  const std::string fifo = root + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string received;
  embedapt::Status read;  // assertions stay on the test's thread
  std::thread reader([&] { read = read_file(fifo, &received); });
  REQUIRE(write_file_atomic(fifo, "through the pipe").ok());
  reader.join();
  CHECK(read.ok());
  CHECK(received == "through the pipe");
  CHECK(fs::is_fifo(fifo));
}
