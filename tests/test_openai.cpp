// The openai: embedder against a real HTTP server on loopback that answers
// like an OpenAI-compatible /v1/embeddings endpoint, and fails on purpose.
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>

#include "core/embed/openai.h"
#include "tests/support/fake_embeddings.h"
#include "tests/support/http_server.h"

using embedapt::Code;
using embedapt::Embedder;
using embedapt::EmbedSide;
using embedapt::open_openai_embedder;
using embedapt::OpenAIOptions;
using embedapt::Status;
using embedapt::testing::fake_embeddings_reply;
using embedapt::testing::fake_vector;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpReply;
using embedapt::testing::HttpTestServer;

namespace {

constexpr int kDim = 12;
const std::string kKey = "sk-test-7f3a9c0d1e2b";

OpenAIOptions options_for(const HttpTestServer& server) {
  OpenAIOptions options;
  options.model = "fake-embed-1";
  options.base_url = server.base_url() + "/v1";
  options.api_key = kKey;
  options.retry.initial_backoff_seconds = 0.01;
  options.retry.max_backoff_seconds = 3;
  options.retry.timeout_seconds = 2;
  return options;
}

std::vector<std::string> numbered_texts(int n) {
  std::vector<std::string> texts;
  texts.reserve(n);
  for (int i = 0; i < n; ++i) texts.push_back("text number " + std::to_string(i));
  return texts;
}

void check_vectors(const std::vector<std::string>& texts, const std::vector<float>& out) {
  REQUIRE(out.size() == texts.size() * kDim);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<float> expected = fake_vector(texts[i], kDim);
    std::vector<float> got(out.begin() + i * kDim, out.begin() + (i + 1) * kDim);
    REQUIRE(got == expected);
  }
}

}  // namespace

TEST_CASE("openai embedder learns the dimension, batches, and restores order", "[openai]") {
  std::mutex mu;
  std::vector<size_t> batch_sizes;
  bool authorized = true;
  HttpTestServer server([&](const HttpExchange& request) {
    std::lock_guard<std::mutex> lock(mu);
    authorized = authorized && request.headers.count("authorization") &&
                 request.headers.at("authorization") == "Bearer " + kKey;
    if (request.path != "/v1/embeddings") return HttpReply::json(404, R"({"error":"no route"})");
    batch_sizes.push_back(nlohmann::json::parse(request.body)["input"].size());
    return fake_embeddings_reply(request, kDim);
  });
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options_for(server), &embedder).ok());
  CHECK(embedder->dim() == kDim);
  CHECK(embedder->identity() == "openai:fake-embed-1@127.0.0.1:" + std::to_string(server.port()));
  CHECK(server.requests() == 1);  // the probe

  std::vector<std::string> texts = numbered_texts(150);
  std::vector<float> out = {42.0f};  // embed() appends
  REQUIRE(embedder->embed(texts, EmbedSide::kQuery, &out).ok());
  CHECK(out[0] == 42.0f);
  out.erase(out.begin());
  check_vectors(texts, out);
  std::sort(batch_sizes.begin() + 1, batch_sizes.end());
  CHECK(batch_sizes == std::vector<size_t>{1, 22, 64, 64});
  CHECK(authorized);
}

TEST_CASE("openai embedder keeps order with several requests in flight", "[openai]") {
  std::atomic<int> in_flight{0};
  std::atomic<int> most_in_flight{0};
  std::atomic<int> seen{0};
  HttpTestServer server([&](const HttpExchange& request) {
    int now = ++in_flight;
    int most = most_in_flight;
    while (now > most && !most_in_flight.compare_exchange_weak(most, now)) {
    }
    // Later requests answer sooner, so replies arrive out of order.
    std::this_thread::sleep_for(std::chrono::milliseconds(200 - 15 * std::min(10, seen++)));
    HttpReply reply = fake_embeddings_reply(request, kDim);
    --in_flight;
    return reply;
  });
  OpenAIOptions options = options_for(server);
  options.known_dim = kDim;
  options.batch_size = 10;
  options.max_in_flight = 4;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options, &embedder).ok());
  std::vector<std::string> texts = numbered_texts(95);
  std::vector<float> out;
  REQUIRE(embedder->embed(texts, EmbedSide::kDocument, &out).ok());
  check_vectors(texts, out);
  CHECK(server.requests() == 10);
  CHECK(most_in_flight == 4);
}

TEST_CASE("openai embedder workers keep their connection between batches", "[openai]") {
  HttpTestServer server([](const HttpExchange& request) { return fake_embeddings_reply(request, kDim); },
                        /*lifetime_seconds=*/60, /*keep_alive=*/true);
  OpenAIOptions options = options_for(server);
  options.known_dim = kDim;
  options.batch_size = 10;
  options.max_in_flight = 2;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options, &embedder).ok());
  std::vector<std::string> texts = numbered_texts(100);
  std::vector<float> out;
  REQUIRE(embedder->embed(texts, EmbedSide::kDocument, &out).ok());
  check_vectors(texts, out);
  CHECK(server.requests() == 10);
  CHECK(server.connections() <= 2);  // one per worker, not one per batch
}

TEST_CASE("openai embedder survives 429, 500, a timeout and a dropped connection", "[openai]") {
  std::atomic<int> seen{0};
  HttpTestServer server([&](const HttpExchange& request) {
    switch (seen++) {
      case 0:
        return HttpReply::too_many_requests(1);
      case 1:
        return HttpReply::json(500, R"({"error":{"message":"internal"}})");
      case 2: {
        HttpReply slow = fake_embeddings_reply(request, kDim);
        slow.delay_seconds = 3;  // past the 1 s client timeout
        return slow;
      }
      case 3:
        return HttpReply::dropped();
      default:
        return fake_embeddings_reply(request, kDim);
    }
  });
  OpenAIOptions options = options_for(server);
  options.known_dim = kDim;
  options.retry.timeout_seconds = 1;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options, &embedder).ok());
  std::vector<std::string> texts = numbered_texts(5);
  std::vector<float> out;
  Status s = embedder->embed(texts, EmbedSide::kDocument, &out);
  REQUIRE(s.ok());
  check_vectors(texts, out);
  CHECK(server.requests() == 5);
}

TEST_CASE("openai embedder gives up with kUnavailable and never shows the key", "[openai]") {
  HttpTestServer server(
      [](const HttpExchange&) { return HttpReply::json(503, R"({"error":"overloaded"})"); });
  OpenAIOptions options = options_for(server);
  options.known_dim = kDim;
  options.retry.max_attempts = 3;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options, &embedder).ok());
  std::vector<float> out;
  Status s = embedder->embed(numbered_texts(3), EmbedSide::kQuery, &out);
  CHECK(s.code() == Code::kUnavailable);
  CHECK(server.requests() == 3);
  CHECK(out.empty());
  CHECK(s.message().find("openai:fake-embed-1") != std::string::npos);
  CHECK(s.message().find("3 attempts") != std::string::npos);
  CHECK(s.message().find(kKey) == std::string::npos);
}

TEST_CASE("openai embedder reports a 401 clearly, redacting a key the server quotes", "[openai]") {
  HttpTestServer server([](const HttpExchange& request) {
    std::string key = request.headers.at("authorization").substr(7);
    return HttpReply::json(401, R"({"error":{"message":"Incorrect API key provided: )" + key +
                                    R"(","type":"invalid_request_error"}})");
  });
  std::unique_ptr<Embedder> embedder;
  Status s = open_openai_embedder(options_for(server), &embedder);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("HTTP 401") != std::string::npos);
  CHECK(s.message().find("Incorrect API key provided: [redacted]") != std::string::npos);
  CHECK(s.message().find(kKey) == std::string::npos);
  CHECK(server.requests() == 1);  // a 4xx is not retried
}

TEST_CASE("openai embedder refuses empty texts and malformed responses", "[openai]") {
  std::atomic<bool> short_reply{false};
  HttpTestServer server([&](const HttpExchange& request) {
    if (short_reply) return HttpReply::json(200, R"({"data":[{"index":0,"embedding":[1,2]}]})");
    return fake_embeddings_reply(request, kDim);
  });
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options_for(server), &embedder).ok());
  std::vector<float> out;
  Status empty = embedder->embed({"fine", ""}, EmbedSide::kQuery, &out);
  CHECK(empty.code() == Code::kInvalidArgument);
  CHECK(empty.message().find("text 1 is empty") != std::string::npos);

  short_reply = true;
  Status wrong_count = embedder->embed({"a", "b"}, EmbedSide::kQuery, &out);
  CHECK(wrong_count.code() == Code::kCorruption);
  CHECK(wrong_count.message().find("sent 2 texts, got 1") != std::string::npos);
  Status wrong_dim = embedder->embed({"a"}, EmbedSide::kQuery, &out);
  CHECK(wrong_dim.code() == Code::kCorruption);
  CHECK(wrong_dim.message().find("2 dimensions, expected 12") != std::string::npos);
  CHECK(out.empty());
}

TEST_CASE("openai embedder refuses a number no float holds", "[openai]") {
  HttpTestServer server([&](const HttpExchange& request) {
    if (request.body.find("HUGE") != std::string::npos) {
      return HttpReply::json(200, R"({"data":[{"index":0,"embedding":[1e300,0,0,0,0,0,0,0,0,0,0,1]}]})");
    }
    return fake_embeddings_reply(request, kDim);
  });
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options_for(server), &embedder).ok());
  std::vector<float> out;
  Status huge = embedder->embed({"HUGE"}, EmbedSide::kQuery, &out);
  CHECK(huge.code() == Code::kCorruption);
  CHECK(huge.message().find("non-finite") != std::string::npos);
  CHECK(out.empty());
}

TEST_CASE("openai embedder names its backend by the base URL's path and keeps a query string last",
          "[openai]") {
  std::mutex mu;
  std::vector<std::string> paths;
  HttpTestServer server([&](const HttpExchange& request) {
    std::lock_guard<std::mutex> lock(mu);
    paths.push_back(request.path);
    return fake_embeddings_reply(request, kDim);
  });
  // Two deployments on one host were one identity, so one cache: the second
  // got the first's vectors.
  auto identity_at = [&](const std::string& path) {
    OpenAIOptions options = options_for(server);
    options.base_url = server.base_url() + path;
    std::unique_ptr<Embedder> embedder;
    REQUIRE(open_openai_embedder(options, &embedder).ok());
    return embedder->identity();
  };
  const std::string host = "openai:fake-embed-1@127.0.0.1:" + std::to_string(server.port());
  CHECK(identity_at("/v1") == host);  // the API's root: identities from before the path counted
  CHECK(identity_at("/a/v1") == host + "/a/v1");
  CHECK(identity_at("/b/v1/") == host + "/b/v1");
  CHECK(identity_at("/v1?api-version=2") == host);
  std::lock_guard<std::mutex> lock(mu);
  CHECK(paths.back() == "/v1/embeddings?api-version=2");  // was "/v1?api-version=2/embeddings"
}

TEST_CASE("openai embedder says why a reply is not JSON and refuses a probe of absurd size", "[openai]") {
  std::atomic<int> mode{0};
  HttpTestServer server([&](const HttpExchange& request) {
    if (mode == 1) return HttpReply::json(200, R"({"data":[{"index":0,"embedding":[NaN,1]}]})");
    if (mode == 3) return HttpReply::json(200, R"({"data":")" + std::string(100000, 'j') + R"("})");
    if (mode == 2) {
      std::string huge = "[0";
      for (int i = 1; i < 70000; ++i) huge += ",0.5";
      return HttpReply::json(200, R"({"data":[{"index":0,"embedding":)" + huge + "]}]}");
    }
    return fake_embeddings_reply(request, kDim);
  });
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_openai_embedder(options_for(server), &embedder).ok());
  mode = 1;
  std::vector<float> out;
  Status nan = embedder->embed({"a"}, EmbedSide::kQuery, &out);
  CHECK(nan.code() == Code::kCorruption);
  CHECK(nan.message().find("not JSON") != std::string::npos);  // was: has no "data" array
  // A probe sized the first batch by its reply: 2,000,000 numbers asked for
  // gigabytes and died of bad_alloc.
  mode = 2;
  std::unique_ptr<Embedder> absurd;
  Status probe = open_openai_embedder(options_for(server), &absurd);
  CHECK(probe.code() == Code::kCorruption);
  CHECK(probe.message().find("70000 dimensions") != std::string::npos);
  // A reply larger than any n embeddings can be is cut off unread: 60 MB of
  // junk, parsed whole, took 2 GB.
  mode = 3;
  std::vector<float> rows;
  Status junk = embedder->embed({"a"}, EmbedSide::kQuery, &rows);
  CHECK(junk.code() == Code::kCorruption);
  CHECK(junk.message().find("bytes") != std::string::npos);
}

TEST_CASE("openai embedder quotes a server's error as one bounded line without the key", "[openai]") {
  HttpTestServer server([](const HttpExchange& request) {
    const std::string key = request.headers.at("authorization").substr(7);
    const std::string message =
        "bad\\nrequest\\u001b[2J" + std::string(290, 'x') + key + std::string(20000, 'z');
    return HttpReply::json(400, R"({"error":{"message":")" + message + R"("}})");
  });
  std::unique_ptr<Embedder> embedder;
  Status s = open_openai_embedder(options_for(server), &embedder);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message().find("bad request") != std::string::npos);
  CHECK(s.message().find_first_of("\n\x1b") == std::string::npos);
  CHECK(s.message().find(kKey.substr(0, 7)) == std::string::npos);
  CHECK(s.message().size() < 600);
}

TEST_CASE("openai embedder takes each attempt's timeout from the embedder options", "[openai]") {
  embedapt::EmbedderOptions options;
  CHECK(embedapt::openai_options("m", options).retry.timeout_seconds == 120);
  options.openai_timeout_seconds = 7.5;
  CHECK(embedapt::openai_options("m", options).retry.timeout_seconds == 7.5);
}
