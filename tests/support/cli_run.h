// Runs the built `embedapt` CLI as a user would, through a shell.
#pragma once

#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

namespace embedapt::testing {

// The CLI binary of this build.
inline const std::string kCliBinary = std::string(EMBEDAPT_BINARY_DIR) + "/bin/embedapt";

struct CliRun {
  int exit_code = -1;  // -1 if the process did not exit normally
  std::string output;  // stdout and stderr, interleaved
};

// `args` is appended to the binary's path as shell words.
inline CliRun run_cli(const std::string& args) {
  CliRun r;
  FILE* pipe = popen((kCliBinary + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace embedapt::testing
