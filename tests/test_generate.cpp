// Question generation against a real OpenAI-style chat server on loopback:
// messy replies, injected 429/500, a bad key, a run killed with SIGKILL and
// resumed from its journal, and the done-when of issue 5 on uber_2021.pdf.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "core/embed/tokenizer.h"
#include "core/eval/dataset.h"
#include "core/generate/chat.h"
#include "core/generate/dataset_builder.h"
#include "core/generate/generator.h"
#include "core/generate/journal.h"
#include "core/generate/loader.h"
#include "tests/support/http_server.h"
#include "tests/support/temp_dir.h"

extern char** environ;

using namespace embedapt;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpReply;
using embedapt::testing::HttpTestServer;
using embedapt::testing::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The chunk text inside a prompt built from the default template.
std::string chunk_of(const std::string& prompt) {
  const std::string rule = "---------------------\n";
  size_t begin = prompt.find(rule);
  size_t end = prompt.find("\n" + rule, begin + rule.size());
  if (begin == std::string::npos || end == std::string::npos) return "";
  return prompt.substr(begin + rule.size(), end - begin - rule.size());
}

// The first `n` words of `text` made of letters and digits only.
std::string topic(const std::string& text, size_t n = 4) {
  std::istringstream in(text);
  std::string out;
  for (std::string word; out.size() < 60 && n > 0 && in >> word;) {
    std::string clean;
    for (char c : word) {
      if (std::isalnum(static_cast<unsigned char>(c))) clean.push_back(c);
    }
    if (clean.empty()) continue;
    out += (out.empty() ? "" : " ") + clean;
    --n;
  }
  return out;
}

// A reply written the way small instruction models write them: a preamble,
// numbering, emphasis, "Question 2:" prefixes, and answers.
std::string messy_reply(const std::string& chunk) {
  std::string t = topic(chunk);
  return "Sure! Here are two questions based on the context information:\n\n"
         "1. What does the passage about \"" +
         t +
         "\" explain?\n"
         "Answer: It explains the matter in detail.\n\n"
         "Question 2: **Which facts about " +
         t +
         " are stated?**\n"
         "Answer Key:\n"
         "a) The first fact\n"
         "Or,\n";
}

HttpReply completion(const std::string& content) {
  json body = {{"id", "chatcmpl-test"},
               {"object", "chat.completion"},
               {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}}}},
               {"usage", {{"prompt_tokens", 100}, {"completion_tokens", 30}, {"total_tokens", 130}}}};
  return HttpReply::json(200, body.dump());
}

// A chat server that answers messily and counts the requests for each chunk.
class ChatServer {
 public:
  // `fail(chunk, attempt)` may replace the answer (attempt counts from 1).
  using Failure = std::function<std::optional<HttpReply>(const std::string& chunk, int attempt)>;

  explicit ChatServer(Failure fail = nullptr, double delay_seconds = 0)
      : fail_(std::move(fail)),
        delay_seconds_(delay_seconds),
        server_([this](const HttpExchange& request) { return handle(request); }) {}

  std::string base_url() const { return server_.base_url() + "/v1"; }
  int requests() const { return server_.requests(); }
  std::map<std::string, int> per_chunk() {
    std::lock_guard<std::mutex> lock(mu_);
    return per_chunk_;
  }
  std::string last_authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }

 private:
  HttpReply handle(const HttpExchange& request) {
    if (request.method != "POST" || request.path != "/v1/chat/completions") {
      return HttpReply::json(404, R"({"error":{"message":"no such route"}})");
    }
    json body = json::parse(request.body, nullptr, false);
    if (!body.is_object() || body["model"] != "test-model" || !body["messages"].is_array()) {
      return HttpReply::json(400, R"({"error":{"message":"bad request"}})");
    }
    std::string chunk = chunk_of(body["messages"][0]["content"].get<std::string>());
    int attempt;
    {
      std::lock_guard<std::mutex> lock(mu_);
      attempt = ++per_chunk_[chunk];
      auto auth = request.headers.find("authorization");
      authorization_ = auth == request.headers.end() ? "" : auth->second;
    }
    if (fail_) {
      if (std::optional<HttpReply> failure = fail_(chunk, attempt)) return *failure;
    }
    HttpReply reply = completion(messy_reply(chunk));
    reply.delay_seconds = delay_seconds_;
    return reply;
  }

  Failure fail_;
  double delay_seconds_;
  std::mutex mu_;
  std::map<std::string, int> per_chunk_;
  std::string authorization_;
  HttpTestServer server_;  // last: stopped first, before the state its handler uses
};

GenerateOptions options_for(const std::string& base_url, int concurrency = 4) {
  GenerateOptions options;
  options.chat.base_url = base_url;
  options.chat.model = "test-model";
  options.chat.api_key = "sk-test-key";
  options.chat.retry.max_attempts = 3;
  options.chat.retry.initial_backoff_seconds = 0.01;
  options.chat.retry.max_backoff_seconds = 0.05;
  options.chat.retry.timeout_seconds = 10;
  options.concurrency = concurrency;
  return options;
}

GenerateOptions options_for(const ChatServer& server, int concurrency = 4) {
  return options_for(server.base_url(), concurrency);
}

// `count` one-paragraph chunks, each about a different numbered subject.
std::vector<Chunk> synthetic_chunks(size_t count) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < count; ++i) {
    std::string n = std::to_string(i);
    std::ostringstream text;
    text << "Subject" << n << " harbour records show that ship " << n << " arrived on day " << n << ".";
    chunks.push_back({"chunk" + n, i % 2 ? "odd.txt" : "even.txt", 1, text.str()});
  }
  return chunks;
}

void check_clean(const std::string& q) {
  INFO(q);
  REQUIRE(!q.empty());
  CHECK(q.back() == '?');
  CHECK(std::isalpha(static_cast<unsigned char>(q[0])));
  CHECK(q.rfind("Question", 0) != 0);
}

}  // namespace

TEST_CASE("messy replies give two clean questions per chunk and a journal", "[generate]") {
  TempDir dir("messy");
  ChatServer server;
  std::vector<Chunk> chunks = synthetic_chunks(10);
  GenerateResult result;
  std::vector<size_t> progress;
  GenerateOptions options = options_for(server);
  options.progress = [&progress](size_t done, size_t total) {
    CHECK(total == 10);
    progress.push_back(done);
  };
  REQUIRE(generate_questions(chunks, options, dir / "out.json.journal", &result).ok());
  CHECK(result.asked == 10);
  CHECK(result.failures.empty());
  CHECK(result.short_answers == 0);
  CHECK(result.usage.input_tokens == 1000);
  CHECK(result.usage.output_tokens == 300);
  CHECK(progress.back() == 10);
  CHECK(server.last_authorization() == "Bearer sk-test-key");
  for (const Chunk& chunk : chunks) {
    const std::vector<std::string>& questions = result.questions.at(chunk.id);
    REQUIRE(questions.size() == 2);
    std::string t = topic(chunk.text);
    CHECK(questions[0] == "What does the passage about \"" + t + "\" explain?");
    CHECK(questions[1] == "Which facts about " + t + " are stated?");
  }

  // A second run is answered by the journal alone: nothing is paid twice.
  GenerateResult again;
  REQUIRE(generate_questions(chunks, options_for(server), dir / "out.json.journal", &again).ok());
  CHECK(again.asked == 0);
  CHECK(again.from_journal == 10);
  CHECK(again.journal_usage.input_tokens == 1000);
  CHECK(again.questions == result.questions);
  CHECK(server.requests() == 10);

  // The key is never written to the journal.
  std::string journal;
  std::ifstream in(dir / "out.json.journal");
  journal.assign(std::istreambuf_iterator<char>(in), {});
  CHECK(journal.find("sk-test-key") == std::string::npos);
}

TEST_CASE("429 and 500 are retried; a chunk that keeps failing is named and the rest go on", "[generate]") {
  TempDir dir("failures");
  std::vector<Chunk> chunks = synthetic_chunks(12);
  const std::string doomed = chunks[5].text;
  std::atomic<bool> healthy{false};
  ChatServer server([&](const std::string& chunk, int attempt) -> std::optional<HttpReply> {
    if (healthy) return std::nullopt;
    if (chunk == doomed) return HttpReply::json(500, R"({"error":{"message":"model crashed"}})");
    if (attempt == 1 && chunk.rfind("Subject3 ", 0) == 0) return HttpReply::too_many_requests(1);
    if (attempt == 1 && chunk.size() % 3 == 0) return HttpReply::json(503, "overloaded");
    return std::nullopt;
  });
  GenerateOptions options = options_for(server);
  options.chat.retry.max_backoff_seconds = 2;  // the cap on a Retry-After wait
  GenerateResult result;
  auto start = std::chrono::steady_clock::now();
  REQUIRE(generate_questions(chunks, options, dir / "j", &result).ok());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds >= 1.0);  // Retry-After: 1 was honoured
  CHECK(result.asked == 11);
  REQUIRE(result.failures.size() == 1);
  CHECK(result.failures[0].code() == Code::kUnavailable);
  CHECK(result.failures[0].message().find("chunk " + chunks[5].id + " (odd.txt, page 1)") == 0);
  CHECK(result.failures[0].message().find("model crashed") != std::string::npos);
  CHECK(server.per_chunk()[doomed] == 3);  // every attempt the policy allows
  CHECK(server.per_chunk()[chunks[3].text] == 2);
  for (const auto& [id, questions] : result.questions) CHECK(questions.size() == 2);

  // Rerun once the server is healthy: only the failed chunk is asked.
  healthy = true;
  int before = server.requests();
  GenerateResult rerun;
  REQUIRE(generate_questions(chunks, options_for(server), dir / "j", &rerun).ok());
  CHECK(rerun.failures.empty());
  CHECK(rerun.asked == 1);
  CHECK(rerun.from_journal == 11);
  CHECK(server.requests() == before + 1);
  CHECK(rerun.questions.size() == 12);
}

TEST_CASE("a client error (bad key) stops the run instead of failing every chunk", "[generate]") {
  TempDir dir("bad_key");
  ChatServer server([](const std::string&, int) -> std::optional<HttpReply> {
    return HttpReply::json(401, R"({"error":{"message":"Incorrect API key provided"}})");
  });
  GenerateResult result;
  REQUIRE(generate_questions(synthetic_chunks(40), options_for(server, 2), dir / "j", &result).ok());
  CHECK(result.asked == 0);
  REQUIRE(!result.failures.empty());
  CHECK(result.failures.size() <= 2);
  CHECK(server.requests() <= 2);
  CHECK(result.failures[0].code() == Code::kInvalidArgument);
  CHECK(result.failures[0].message().find("HTTP 401: Incorrect API key provided") != std::string::npos);
}

TEST_CASE("a chat server never gets the key into a message or a reply", "[generate]") {
  const std::string key = "sk-chat-4d1e9b7a55";
  std::atomic<int> mode{0};
  std::string last_path;
  std::mutex mu;
  HttpTestServer server([&](const HttpExchange& request) {
    std::lock_guard<std::mutex> lock(mu);
    last_path = request.path;
    const std::string quoted = std::string(295, 'x') + " key " + key;  // past a 300-byte cut: its first bytes
    switch (mode.load()) {
      case 0:
        return HttpReply::json(401, R"({"error":{"message":"Incorrect API key provided: )" + key + R"("}})");
      case 1:
        return HttpReply::json(500, R"({"error":{"message":")" + quoted + R"("}})");
      case 2:
        return HttpReply::json(200, "not json " + quoted);
      default: {
        json body = {{"choices", {{{"message", {{"content", "What is " + key + "?"}}}}}},
                     {"usage", {{"prompt_tokens", -3000}, {"completion_tokens", uint64_t{1} << 63}}}};
        return HttpReply::json(200, body.dump());
      }
    }
  });
  ChatOptions options;
  options.base_url = server.base_url() + "/v1?api-version=1";
  options.model = "m";
  options.api_key = key;
  options.retry.max_attempts = 1;
  options.retry.timeout_seconds = 5;
  for (int m = 0; m < 3; ++m) {
    CAPTURE(m);
    mode = m;
    std::string reply;
    ChatUsage usage;
    const Status s = chat_complete(options, "Q", &reply, &usage);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(key.substr(0, 7)) == std::string::npos);
  }
  mode = 3;
  std::string reply;
  ChatUsage usage;
  REQUIRE(chat_complete(options, "Q", &reply, &usage).ok());
  CHECK(reply == "What is [redacted]?");  // a question quoting the key would be written to the dataset
  CHECK(usage.input_tokens == 0);         // -3000 made a negative cost
  CHECK(usage.output_tokens == 0);        // 2^63 overflowed the run's sum
  std::lock_guard<std::mutex> lock(mu);
  CHECK(last_path == "/v1/chat/completions?api-version=1");
}

TEST_CASE("replies of any JSON shape fail their chunk, never the run", "[generate]") {
  // Each once threw from json's operator[] inside a worker thread, which
  // terminated the process.
  const std::vector<std::string> bodies = {R"({"choices":[1]})",
                                           R"({"choices":[{"message":1}]})",
                                           R"({"choices":[{"message":{"content":7}}]})",
                                           R"({"choices":"x"})",
                                           R"([1])",
                                           R"("text")",
                                           R"({"choices":[],"usage":3})"};
  TempDir dir("odd_json");
  std::atomic<size_t> served{0};
  ChatServer server([&](const std::string&, int) -> std::optional<HttpReply> {
    return HttpReply::json(200, bodies[served++ % bodies.size()]);
  });
  GenerateResult result;
  REQUIRE(
      generate_questions(synthetic_chunks(bodies.size()), options_for(server, 2), dir / "j", &result).ok());
  CHECK(result.asked == 0);
  REQUIRE(result.failures.size() == bodies.size());
  for (const Status& failure : result.failures) {
    CHECK(failure.code() == Code::kCorruption);
    CHECK(failure.message().find("not a chat completion") != std::string::npos);
  }
  ChatUsage usage;
  std::string reply;
  REQUIRE(parse_chat_completion(R"({"choices":[{"message":{"content":"Q?"}}],"usage":{"prompt_tokens":"x"}})",
                                &reply, &usage)
              .ok());
  CHECK(reply == "Q?");
  CHECK(usage.input_tokens == 0);
  CHECK(parse_chat_completion(R"({"error":{"message":1}})", &reply, &usage).code() == Code::kCorruption);
}

TEST_CASE("the journal refuses other arguments and survives a torn last line", "[generate]") {
  TempDir dir("journal");
  ChatServer server;
  std::vector<Chunk> chunks = synthetic_chunks(3);
  GenerateResult result;
  REQUIRE(generate_questions(chunks, options_for(server), dir / "j", &result).ok());

  GenerateOptions other_model = options_for(server);
  other_model.chat.model = "another-model";
  Status s = generate_questions(chunks, other_model, dir / "j", &result);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("llm_model: \"test-model\" in the journal, \"another-model\" now") !=
        std::string::npos);

  GenerateOptions other_count = options_for(server);
  other_count.questions_per_chunk = 3;
  CHECK(generate_questions(chunks, other_count, dir / "j", &result).code() == Code::kFailedPrecondition);
  chunks[1].text += " Changed.";
  CHECK(generate_questions(chunks, options_for(server), dir / "j", &result).code() ==
        Code::kFailedPrecondition);
  chunks = synthetic_chunks(3);

  // What a kill in the middle of an append leaves behind.
  std::ofstream(dir / "j", std::ios::app) << R"({"chunk":"chunk9","questi)";
  GenerateResult resumed;
  REQUIRE(generate_questions(chunks, options_for(server), dir / "j", &resumed).ok());
  CHECK(resumed.from_journal == 3);
  CHECK(resumed.asked == 0);
  std::vector<JournalEntry> entries;
  std::unique_ptr<Journal> journal;
  std::ifstream in(dir / "j");
  std::string first_line;
  std::getline(in, first_line);
  REQUIRE(Journal::open(dir / "j", json::parse(first_line)["arguments"].dump(), &entries, &journal).ok());
  CHECK(entries.size() == 3);

  // A damaged line in the middle is named, not skipped.
  std::ofstream(dir / "k") << first_line << "\nnot json\n";
  CHECK(Journal::open(dir / "k", json::parse(first_line)["arguments"].dump(), &entries, &journal).code() ==
        Code::kCorruption);
}

TEST_CASE("the journal refuses a header generate did not write, in one line naming it", "[generate]") {
  TempDir dir("journal_header");
  const std::string path = dir / "j";
  const std::string arguments = R"({"llm_model":"m","chunks":3})";
  std::vector<JournalEntry> entries;
  std::unique_ptr<Journal> journal;
  auto open_with_header = [&](const std::string& header) {
    std::ofstream(path, std::ios::trunc) << header << "\n";
    return Journal::open(path, arguments, &entries, &journal);
  };
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  // Compared and quoted whole, the first overflowed the stack; the second threw from value().
  for (const std::string& header :
       {R"({"format":"embedapt-generate-journal/1","arguments":{"llm_model":)" + deep + "}}",
        std::string(R"({"format":5,"arguments":{"llm_model":"m","chunks":3}})"),
        std::string(R"({"format":"embedapt-generate-journal/1","arguments":{"llm_model":["m"],"chunks":3}})"),
        std::string(R"({"format":"embedapt-generate-journal/1","arguments":[]})"),
        std::string(R"({"format":"embedapt-generate-journal/1"})"), deep}) {
    Status s = open_with_header(header);
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message() == path + ":1: not an embedapt generate journal");
  }

  // Other plain arguments are still told apart, each value quoted short.
  Status s = open_with_header(R"({"format":"embedapt-generate-journal/1","arguments":{"llm_model":")" +
                              std::string(1 << 20, 'x') + R"(","chunks":3}})");
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("llm_model: \"xxxx") != std::string::npos);
  CHECK(s.message().find("... in the journal, \"m\" now") != std::string::npos);
  CHECK(s.message().size() < 500);
  REQUIRE(open_with_header(R"({"format":"embedapt-generate-journal/1","arguments":)" + arguments + "}").ok());
  journal.reset();

  // Token counts chat_complete could not have reported: summed over the
  // run, 2^64 - 1 was read back as -1 and 2^62 overflowed.
  for (const std::string count : {"18446744073709551615", "4611686018427387904", "-3"}) {
    CAPTURE(count);
    const std::string header = R"({"format":"embedapt-generate-journal/1","arguments":)" + arguments + "}";
    std::string journal = header + "\n" + R"({"chunk":"c","reply":"Q?","input_tokens":)";
    journal += count;
    journal += R"(,"output_tokens":1})";
    s = open_with_header(journal);
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message().find(path + ":2: not a journal entry") != std::string::npos);
  }
}

constexpr int kKillConcurrency = 4;

// The run the next test kills: a fresh process of this binary, started with
// the server's URL and the journal in its environment. Not a fork of the
// test itself, whose server threads make anything but exec unsafe in a
// forked child (and which ThreadSanitizer refuses to run).
TEST_CASE("generate child (a helper process)", "[.generate_child]") {
  const char* url = std::getenv("EMBEDAPT_GENERATE_URL");
  const char* journal = std::getenv("EMBEDAPT_GENERATE_JOURNAL");
  REQUIRE(url != nullptr);
  REQUIRE(journal != nullptr);
  GenerateResult result;
  REQUIRE(
      generate_questions(synthetic_chunks(80), options_for(url, kKillConcurrency), journal, &result).ok());
}

TEST_CASE("a run killed with SIGKILL resumes asking only what it had no answer for", "[generate][kill]") {
  TempDir dir("kill");
  const int concurrency = kKillConcurrency;
  std::vector<Chunk> chunks = synthetic_chunks(80);
  ChatServer server(nullptr, /*delay_seconds=*/0.04);
  std::string journal = dir / "out.json.journal";

  std::vector<std::string> env_strings = {"EMBEDAPT_GENERATE_URL=" + server.base_url(),
                                          "EMBEDAPT_GENERATE_JOURNAL=" + journal};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"test_generate", "[.generate_child]", nullptr};
  pid_t child = 0;
  REQUIRE(posix_spawn(&child, "/proc/self/exe", nullptr, nullptr, const_cast<char**>(argv), envp.data()) ==
          0);
  // Kill it mid-way, with requests in flight.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (server.requests() < 30 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(kill(child, SIGKILL) == 0);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  int asked_before = server.requests();
  CHECK(asked_before < 80);

  GenerateResult result;
  REQUIRE(generate_questions(chunks, options_for(server, concurrency), journal, &result).ok());
  CHECK(result.failures.empty());
  CHECK(result.questions.size() == 80);
  CHECK(result.from_journal + result.asked == 80);
  CHECK(result.from_journal >= static_cast<size_t>(asked_before - concurrency));

  size_t asked_twice = 0;
  for (const auto& [chunk, count] : server.per_chunk()) {
    CHECK(count <= 2);
    asked_twice += count == 2;
  }
  WARN("killed after " << asked_before << " requests; " << result.from_journal
                       << " chunks came from the journal, " << asked_twice << " were asked again");
  CHECK(asked_twice <= static_cast<size_t>(concurrency));
  CHECK(server.per_chunk().size() == 80);
  for (const auto& [id, questions] : result.questions) CHECK(questions.size() == 2);
}

TEST_CASE("uber_2021.pdf becomes a valid dataset of clean questions (issue 5, done when)",
          "[generate][pdf]") {
  const std::string pdf = EMBEDAPT_SOURCE_DIR "/../shared/data/10k/uber_2021.pdf";
  const std::string vocab = EMBEDAPT_SOURCE_DIR "/models/all-MiniLM-L6-v2/vocab.txt";
  if (!fs::exists(pdf) || !fs::exists(vocab)) {
    WARN("skipped: needs " << pdf << " and " << vocab);
    return;
  }
  TempDir dir("uber");
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  REQUIRE(WordPieceTokenizer::load(vocab, {}, &tokenizer).ok());
  Document doc;
  REQUIRE(load_document(pdf, "uber_2021.pdf", &doc).ok());
  std::vector<Chunk> chunks;
  chunk_document(
      doc, ChunkerOptions{}, [&](std::string_view t) { return tokenizer->count_tokens(t); }, &chunks);
  CHECK(chunks.size() >= 410 * 3 / 4);

  ChatServer server;
  GenerateResult result;
  REQUIRE(generate_questions(chunks, options_for(server, 8), dir / "uber.json.journal", &result).ok());
  REQUIRE(result.failures.empty());
  QaDataset train, val;
  REQUIRE(build_datasets(chunks, result.questions, 0, 42, &train, &val).ok());
  REQUIRE(write_llamaindex_json(dir / "uber.json", train).ok());

  QaDataset written;
  REQUIRE(read_llamaindex_json(dir / "uber.json", &written).ok());
  CHECK(written.corpus.size() == chunks.size());
  CHECK(written.queries.size() == 2 * chunks.size());
  std::map<std::string, int> per_chunk;
  for (const Relevance& r : written.relevant_docs) {
    REQUIRE(r.doc_ids.size() == 1);
    ++per_chunk[r.doc_ids[0]];
  }
  CHECK(per_chunk.size() == chunks.size());
  for (const auto& [chunk, count] : per_chunk) CHECK(count == 2);
  for (const TextEntry& q : written.queries) check_clean(q.text);
}

TEST_CASE("a validation split keeps whole documents apart", "[generate]") {
  std::vector<Chunk> chunks;
  for (const char* doc : {"a.pdf", "b.pdf", "c.pdf", "d.pdf"}) {
    for (int i = 0; i < 3; ++i) chunks.push_back({std::string(doc) + std::to_string(i), doc, i + 1, "text"});
  }
  std::map<std::string, std::vector<std::string>> questions;
  for (const Chunk& c : chunks) questions[c.id] = {"What is in " + c.id + "?"};
  QaDataset train, val;
  REQUIRE(build_datasets(chunks, questions, 0.25, 7, &train, &val).ok());
  CHECK(val.corpus.size() == 3);
  CHECK(train.corpus.size() == 9);
  std::set<char> val_docs, train_docs;
  for (const TextEntry& e : val.corpus) val_docs.insert(e.id[0]);
  for (const TextEntry& e : train.corpus) train_docs.insert(e.id[0]);
  CHECK(val_docs.size() == 1);
  CHECK(train_docs.count(*val_docs.begin()) == 0);
  CHECK(val.queries.size() == 3);
  CHECK(validate_dataset(train, "train").ok());
  CHECK(validate_dataset(val, "val").ok());

  QaDataset same_train, same_val;
  REQUIRE(build_datasets(chunks, questions, 0.25, 7, &same_train, &same_val).ok());
  CHECK(same_val.corpus[0].id == val.corpus[0].id);  // the seed decides

  std::vector<Chunk> one_doc(chunks.begin(), chunks.begin() + 3);
  CHECK(build_datasets(one_doc, questions, 0.2, 7, &train, &val).code() == Code::kInvalidArgument);
  CHECK(build_datasets(chunks, questions, 1.0, 7, &train, &val).code() == Code::kInvalidArgument);
}
