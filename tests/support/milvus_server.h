// Milvus's embedded server on loopback for a test, from the venv that
// `make milvus-venv` (part of `make test`) creates, through
// tools/milvus/serve.py. Stopped when the object goes out of scope, also when
// an assertion fails; if the test process dies, serve.py gets SIGTERM
// (PR_SET_PDEATHSIG) and stops the server itself.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

extern char** environ;

namespace embedapt::testing {

class MilvusServer {
 public:
  MilvusServer() {
    const std::string python = std::string(EMBEDAPT_BINARY_DIR) + "/milvus-venv/bin/python";
    if (!std::filesystem::exists(python)) {
      FAIL("no Milvus venv at " << python << ": `make test` (or `make milvus-venv`) creates it");
    }
    const std::string base = std::string(EMBEDAPT_BINARY_DIR) + "/milvus-server";
    port_file_ = base + "/port." + std::to_string(getpid());
    std::filesystem::create_directories(base);
    std::filesystem::remove(port_file_);
    const std::string script = std::string(EMBEDAPT_SOURCE_DIR) + "/tools/milvus/serve.py";
    const std::string log = base + "/serve.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const char* argv[] = {python.c_str(), script.c_str(), base.c_str(), port_file_.c_str(), nullptr};
    int rc = posix_spawn(&pid_, python.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    // Not a timed assertion: waits for the server or for serve.py to give up.
    while (!std::filesystem::exists(port_file_)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("the Milvus server did not start; see " << log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::ifstream(port_file_) >> port_;
    REQUIRE(port_ > 0);
  }

  ~MilvusServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    std::filesystem::remove(port_file_);
  }

  MilvusServer(const MilvusServer&) = delete;
  MilvusServer& operator=(const MilvusServer&) = delete;

  std::string uri() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string port_file_;
};

}  // namespace embedapt::testing
