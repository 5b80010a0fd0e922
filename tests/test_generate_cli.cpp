// `embedapt generate` as a user runs it: the real binary on the fixture
// documents against a chat server on loopback. Skipped when the binary has
// not been built.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/eval/dataset.h"
#include "tests/support/http_server.h"

extern char** environ;

using namespace embedapt;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpReply;
using embedapt::testing::HttpTestServer;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kCli = EMBEDAPT_BINARY_DIR "/bin/embedapt";
const std::string kFixtures = EMBEDAPT_SOURCE_DIR "/tests/data/generate/";

struct Run {
  int exit_code = -1;
  std::string out, err;
};

// Runs the CLI with `args`, stdout and stderr captured in files of `dir`.
Run run_cli(const fs::path& dir, const std::vector<std::string>& args) {
  std::vector<char*> argv = {const_cast<char*>(kCli.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string out_path = (dir / "stdout").string(), err_path = (dir / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kCli.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  Run run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  REQUIRE(read_file(out_path, &run.out).ok());
  REQUIRE(read_file(err_path, &run.err).ok());
  return run;
}

fs::path work_dir(const std::string& name) {
  fs::path dir = fs::path(EMBEDAPT_BINARY_DIR) / "test_generate_cli" / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "docs" / "more");
  for (const char* file : {"notes.txt", "guide.md", "two_pages.pdf", "broken.pdf"}) {
    fs::copy_file(kFixtures + file, dir / "docs" / file);
  }
  fs::copy_file(kFixtures + "page.html", dir / "docs" / "more" / "page.html");
  return dir;
}

// A chat server replying with numbered questions, a preamble and an answer;
// requests whose prompt contains `fail_on` get HTTP 500.
HttpTestServer chat_server(std::atomic<int>* requests, const std::string& fail_on = "") {
  return HttpTestServer([requests, fail_on](const HttpExchange& request) {
    ++*requests;
    json body = json::parse(request.body, nullptr, false);
    std::string prompt = body["messages"][0]["content"].get<std::string>();
    if (!fail_on.empty() && prompt.find(fail_on) != std::string::npos) {
      return HttpReply::json(500, R"({"error":{"message":"boom"}})");
    }
    std::string id = std::to_string(std::hash<std::string>{}(prompt) % 100000);
    std::string content = "Here are two questions:\n1. What is described in passage " + id +
                          "?\n2) Question 2: Which detail of passage " + id + " matters?\nAnswer: none";
    json reply = {{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}},
                  {"usage", {{"prompt_tokens", 200}, {"completion_tokens", 20}}}};
    return HttpReply::json(200, reply.dump());
  });
}

}  // namespace

TEST_CASE("generate --dry-run prints the first prompt and sends nothing", "[generate_cli]") {
  if (!fs::exists(kCli)) {
    WARN("skipped: " << kCli << " is not built");
    return;
  }
  fs::path dir = work_dir("dry_run");
  Run run =
      run_cli(dir, {"generate", (dir / "docs").string(), "--out", (dir / "out.json").string(), "--dry-run"});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("Write 2 questions") != std::string::npos);
  CHECK(run.out.find("The first ferry leaves at 6:15") != std::string::npos);  // guide.md sorts first
  CHECK(run.err.find("broken.pdf") != std::string::npos);
  CHECK(!fs::exists(dir / "out.json"));
  CHECK(!fs::exists(dir / "out.json.journal"));
}

TEST_CASE("generate writes a split dataset, resumes from its journal and refuses other arguments",
          "[generate_cli]") {
  if (!fs::exists(kCli)) {
    WARN("skipped: " << kCli << " is not built");
    return;
  }
  fs::path dir = work_dir("run");
  std::atomic<int> requests{0};
  HttpTestServer server = chat_server(&requests);
  std::string out = (dir / "out.json").string();
  std::vector<std::string> args = {"generate",       (dir / "docs").string(),
                                   "--out",          out,
                                   "--llm-base-url", server.base_url() + "/v1",
                                   "--llm-model",    "m",
                                   "--val-fraction", "0.25",
                                   "--seed",         "3",
                                   "--concurrency",  "3"};
  Run run = run_cli(dir, args);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.find("skipped") != std::string::npos);
  CHECK(run.err.find("estimated cost unknown") != std::string::npos);

  QaDataset train, val;
  REQUIRE(read_llamaindex_json(out, &train).ok());
  REQUIRE(read_llamaindex_json((dir / "out_val.json").string(), &val).ok());
  // Five chunks (one per page or file) from four readable documents; one document is held out.
  CHECK(train.corpus.size() + val.corpus.size() == 5);
  CHECK(!val.corpus.empty());
  CHECK(train.queries.size() == 2 * train.corpus.size());
  CHECK(val.queries.size() == 2 * val.corpus.size());
  for (const QaDataset* d : {&train, &val}) {
    for (const TextEntry& q : d->queries) {
      INFO(q.text);
      CHECK(q.text.back() == '?');
      CHECK(std::isalpha(static_cast<unsigned char>(q.text[0])));
      CHECK(q.text.rfind("Question", 0) != 0);
    }
  }
  int first_run_requests = requests.load();
  CHECK(first_run_requests == 5);

  // The same command again is answered by the journal, with prices this time.
  std::vector<std::string> priced = args;
  priced.insert(priced.end(), {"--price-per-1k-input", "0.5", "--price-per-1k-output", "1.5"});
  Run again = run_cli(dir, priced);
  CHECK(again.exit_code == 0);
  CHECK(requests.load() == first_run_requests);
  CHECK(again.err.find("0 chunks asked, 5 answered by") != std::string::npos);
  CHECK(again.err.find("earlier runs: 1000 input + 100 output tokens, estimated cost 0.6500") !=
        std::string::npos);

  // Another model would mix answers: refused, naming the difference.
  std::vector<std::string> other = args;
  other[7] = "another-model";
  Run refused = run_cli(dir, other);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("llm_model") != std::string::npos);
  CHECK(requests.load() == first_run_requests);
}

TEST_CASE("generate exits non-zero and writes no dataset when a chunk keeps failing", "[generate_cli]") {
  if (!fs::exists(kCli)) {
    WARN("skipped: " << kCli << " is not built");
    return;
  }
  fs::path dir = work_dir("failing");
  std::atomic<int> requests{0};
  HttpTestServer server = chat_server(&requests, "lighthouse");
  std::string out = (dir / "out.json").string();
  Run run =
      run_cli(dir, {"generate", (dir / "docs").string(), "--out", out, "--llm-base-url",
                    server.base_url() + "/v1", "--llm-model", "m", "--max-attempts", "2", "--timeout", "5"});
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("two_pages.pdf, page 2") != std::string::npos);
  CHECK(run.err.find("1 chunks failed") != std::string::npos);
  CHECK(!fs::exists(out));
  CHECK(fs::exists(out + ".journal"));
}

TEST_CASE("generate refuses a timeout or price that is not a number in range, before sending",
          "[generate_cli]") {
  if (!fs::exists(kCli)) {
    WARN("skipped: " << kCli << " is not built");
    return;
  }
  // --timeout nan passed CLI11's check (NaN compares false with its bound),
  // reached curl as no timeout at all, and a stalled server hung the run.
  fs::path dir = work_dir("bad_numbers");
  std::atomic<int> requests{0};
  HttpTestServer server = chat_server(&requests);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--timeout", "nan"},    {"--timeout", "inf"},           {"--timeout", "0"},
      {"--timeout", "0.0001"}, {"--price-per-1k-input", "-1"}, {"--price-per-1k-output", "nan"}};
  for (const auto& [flag, value] : bad) {
    CAPTURE(flag, value);
    Run run = run_cli(dir, {"generate", (dir / "docs").string(), "--out", (dir / "out.json").string(),
                            "--llm-base-url", server.base_url() + "/v1", "--llm-model", "m", flag, value});
    CHECK(run.exit_code == 1);
    CHECK(run.err.rfind("embedapt: " + flag + ": ", 0) == 0);
  }
  CHECK(requests == 0);
  CHECK(!fs::exists(dir / "out.json.journal"));
}
