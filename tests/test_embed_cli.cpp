// `embedapt embed` as a user runs it: the real binary, a real subprocess
// model (command:), real files, and a real kill -9 in the middle of a run.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/common/files.h"
#include "core/common/npy.h"

extern char** environ;

namespace fs = std::filesystem;

namespace {

const std::string kCli = EMBEDAPT_BINARY_DIR "/bin/embedapt";
const std::string kScript = EMBEDAPT_SOURCE_DIR "/tests/data/fake_command_embedder.py";

fs::path work_dir(const std::string& name) {
  fs::path dir = fs::path(EMBEDAPT_BINARY_DIR) / "test_embed_cli" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Starts the CLI in its own process group (so a kill reaches its model
// subprocess too) with stdin from `input` and stderr to `err`.
pid_t start_cli(const std::vector<std::string>& args, const fs::path& input, const fs::path& err) {
  std::vector<char*> argv = {const_cast<char*>(kCli.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kCli.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  REQUIRE(rc == 0);
  return pid;
}

struct Run {
  int exit_code = -1;
  std::string err;
};

Run run_cli(const std::vector<std::string>& args, const fs::path& dir, const fs::path& input = "/dev/null") {
  fs::path err = dir / "stderr.txt";
  pid_t pid = start_cli(args, input, err);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  Run run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  REQUIRE(embedapt::read_file(err.string(), &run.err).ok());
  return run;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

std::string fake_spec(const std::string& flags = "") {
  return "command:exec python3 " + kScript + " " + flags;
}

// What the fake model returns (see fake_command_embedder.py).
std::vector<float> expected(const std::string& text, bool query) {
  int sum = 0;
  for (unsigned char c : text) sum += c;
  return {static_cast<float>(text.size()), query ? 1.0f : 0.0f, static_cast<float>(sum % 97), 1.0f};
}

size_t count_lines(const fs::path& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

size_t sum_lines(const fs::path& path) {
  std::ifstream in(path);
  size_t total = 0;
  for (size_t n; in >> n;) total += n;
  return total;
}

}  // namespace

TEST_CASE("embed reads strings and {\"text\"} objects and writes .npy", "[embed_cli]") {
  if (!fs::exists(kCli)) FAIL("build the embedapt binary first: " << kCli);
  fs::path dir = work_dir("npy");
  write_text(dir / "in.jsonl", "\"plain string\"\n\n{\"text\": \"Ünïcödé ok\", \"id\": 7}\n\"\"\n");
  Run run = run_cli({"embed", "--embedder", fake_spec(), "--query", "--input", (dir / "in.jsonl").string(),
                     "--out", (dir / "out.npy").string(), "--no-cache", "--progress"},
                    dir);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.find("embedding  3/3  100%") != std::string::npos);
  embedapt::Matrix m;
  REQUIRE(embedapt::read_npy((dir / "out.npy").string(), &m).ok());
  REQUIRE(m.rows == 3);
  REQUIRE(m.cols == 4);
  CHECK(std::vector<float>(m.row(0), m.row(0) + 4) == expected("plain string", true));
  CHECK(std::vector<float>(m.row(1), m.row(1) + 4) == expected("Ünïcödé ok", true));
  CHECK(std::vector<float>(m.row(2), m.row(2) + 4) == expected("", true));
}

TEST_CASE("embed reads stdin and writes JSON lines", "[embed_cli]") {
  fs::path dir = work_dir("jsonl");
  write_text(dir / "in.jsonl", "\"alpha\"\n\"beta\"\n");
  Run run = run_cli({"embed", "--embedder", fake_spec(), "--out", (dir / "out.jsonl").string(), "--cache-dir",
                     (dir / "cache").string()},
                    dir, dir / "in.jsonl");
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  std::string out;
  REQUIRE(embedapt::read_file((dir / "out.jsonl").string(), &out).ok());
  CHECK(out == "[5,0,33,1]\n[4,0,24,1]\n");
  CHECK(fs::exists(dir / "cache" / "CURRENT"));
}

TEST_CASE("embed fails with one line naming the file and line, writing nothing", "[embed_cli]") {
  fs::path dir = work_dir("errors");
  fs::path out = dir / "out.npy";
  SECTION("not JSON") {
    write_text(dir / "in.jsonl", "\"ok\"\n\"fine\"\n{broken\n");
    Run run = run_cli({"embed", "--embedder", fake_spec(), "--input", (dir / "in.jsonl").string(), "--out",
                       out.string(), "--no-cache"},
                      dir);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Catch::StartsWith("embedapt: " + (dir / "in.jsonl").string() + ":3: not JSON: "));
    CHECK(std::count(run.err.begin(), run.err.end(), '\n') == 1);
  }
  SECTION("not a text") {
    write_text(dir / "in.jsonl", "{\"title\": \"no text\"}\n");
    Run run = run_cli({"embed", "--embedder", fake_spec(), "--input", (dir / "in.jsonl").string(), "--out",
                       out.string(), "--no-cache"},
                      dir);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find(":1: expected a JSON string or an object with a string \"text\"") !=
          std::string::npos);
  }
  SECTION("the model fails half-way") {
    write_text(dir / "in.jsonl", "\"one\"\n\"BAD\"\n");
    Run run = run_cli({"embed", "--embedder", fake_spec("--error-on BAD"), "--input",
                       (dir / "in.jsonl").string(), "--out", out.string(), "--no-cache"},
                      dir);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("reported an error: cannot embed BAD") != std::string::npos);
  }
  SECTION("unknown output format and spec") {
    Run format = run_cli({"embed", "--embedder", fake_spec(), "--out", (dir / "out.csv").string()}, dir);
    CHECK(format.exit_code == 1);
    CHECK(format.err.find("must end in .npy or .jsonl") != std::string::npos);
    Run spec = run_cli({"embed", "--embedder", "word2vec", "--out", out.string(), "--no-cache"}, dir);
    CHECK(spec.exit_code == 1);
    CHECK(spec.err.find("embedder spec 'word2vec' is not one of") != std::string::npos);
  }
  SECTION("API options given to another embedder") {  // ignored: --dimensions 5 gave 4-d vectors
    write_text(dir / "in.jsonl", "\"one\"\n");
    Run run = run_cli({"embed", "--embedder", fake_spec(), "--input", (dir / "in.jsonl").string(), "--out",
                       out.string(), "--no-cache", "--dimensions", "5"},
                      dir);
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("apply to openai:MODEL only") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(dir / "out.csv"));
}

TEST_CASE("embed killed with -9 keeps the finished chunks in the cache", "[embed_cli]") {
  fs::path dir = work_dir("kill");
  std::string input;
  std::vector<std::string> texts;
  for (int i = 0; i < 600; ++i) {
    texts.push_back("passage " + std::to_string(i));
    input += "\"" + texts.back() + "\"\n";
  }
  write_text(dir / "in.jsonl", input);
  fs::path log = dir / "requests.log";
  fs::path hang = dir / "hang";
  // The same spec both runs (it is the cache identity); the file decides whether the model hangs.
  std::string spec = fake_spec("--log " + log.string() + " --hang-file " + hang.string());
  std::vector<std::string> args = {"embed",
                                   "--embedder",
                                   spec,
                                   "--input",
                                   (dir / "in.jsonl").string(),
                                   "--out",
                                   (dir / "out.npy").string(),
                                   "--cache-dir",
                                   (dir / "cache").string()};

  // Requests of 64 texts: the probe, then the first chunk of 256 in 4, then the
  // model hangs on the first request of the second chunk.
  write_text(hang, "passage 256");
  pid_t pid = start_cli(args, "/dev/null", dir / "stderr.txt");
  size_t logged = 0;
  for (int i = 0; i < 600 && (logged = count_lines(log)) < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(logged == 6);
  REQUIRE(::kill(-pid, SIGKILL) == 0);  // the CLI and its model
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK_FALSE(fs::exists(dir / "out.npy"));
  size_t first_run_texts = sum_lines(log);
  CHECK(first_run_texts == 1 + 256 + 64);

  fs::remove(hang);
  Run run = run_cli(args, dir);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(sum_lines(log) - first_run_texts == 600 - 256);  // only what the cache lacked; no probe
  embedapt::Matrix m;
  REQUIRE(embedapt::read_npy((dir / "out.npy").string(), &m).ok());
  REQUIRE(m.rows == 600);
  for (size_t i = 0; i < m.rows; i += 37) {
    CHECK(std::vector<float>(m.row(i), m.row(i) + 4) == expected(texts[i], false));
  }
}

TEST_CASE("each embedding request is bounded by --timeout, checked like every HTTP timeout", "[embed_cli]") {
  fs::path dir = work_dir("timeout");
  write_text(dir / "in.jsonl", "\"alpha\"\n");
  // A child that never answers held embed for the fixed 300 s.
  auto start = std::chrono::steady_clock::now();
  Run silent =
      run_cli({"embed", "--embedder", "command:exec sleep 600", "--input", (dir / "in.jsonl").string(),
               "--out", (dir / "out.jsonl").string(), "--no-cache", "--timeout", "1.5"},
              dir);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(silent.err);
  CHECK(silent.exit_code == 1);
  CHECK(silent.err.find("command 'exec sleep 600' timed out after 1.5s waiting for its answer") !=
        std::string::npos);
  CHECK(waited < 30);
  CHECK(!fs::exists(dir / "out.jsonl"));

  const std::string problem = "--timeout: a timeout must be 0.001 to 86400 seconds, got ";
  const std::vector<std::vector<std::string>> commands = {
      {"embed", "--embedder", fake_spec(), "--out", (dir / "out.jsonl").string()},
      {"ingest", (dir / "store").string(), "--dataset", (dir / "qa.json").string(), "--embedder",
       fake_spec()},
      {"eval", (dir / "store").string(), "--dataset", (dir / "qa.json").string(), "--embedder", fake_spec()}};
  for (const auto& command : commands) {
    for (const std::string bad : {"0", "0.0001", "nan", "100000"}) {
      std::vector<std::string> args = command;
      args.insert(args.end(), {"--timeout", bad});
      Run run = run_cli(args, dir);
      INFO(command[0] << " --timeout " << bad << ": " << run.err);
      CHECK(run.exit_code == 1);
      CHECK(run.err.find(problem) != std::string::npos);
    }
  }
  CHECK(!fs::exists(dir / "store"));
}
