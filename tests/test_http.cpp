// http_send against a real server on loopback that fails on purpose.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>

#include "core/common/http.h"
#include "tests/support/http_server.h"

using embedapt::Code;
using embedapt::http_send;
using embedapt::HttpRequest;
using embedapt::HttpResponse;
using embedapt::RetryPolicy;
using embedapt::Status;
using embedapt::timeout_problem;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpReply;
using embedapt::testing::HttpTestServer;

namespace {

RetryPolicy fast_policy() {
  RetryPolicy policy;
  policy.max_attempts = 4;
  policy.initial_backoff_seconds = 0.01;
  policy.max_backoff_seconds = 5;
  policy.timeout_seconds = 2;
  return policy;
}

HttpRequest post(const HttpTestServer& server, const std::string& body = "{}") {
  HttpRequest request;
  request.url = server.base_url() + "/v1/things";
  request.headers = {"Content-Type: application/json", "Authorization: Bearer sk-secret-123"};
  request.body = body;
  return request;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Fails the first `failures` requests with `failure`, then answers 200.
HttpTestServer failing_then_ok(int failures, const HttpReply& failure) {
  auto seen = std::make_shared<std::atomic<int>>(0);
  return HttpTestServer([=](const HttpExchange&) {
    if ((*seen)++ < failures) return failure;
    return HttpReply::json(200, R"({"ok":true})");
  });
}

}  // namespace

TEST_CASE("http_send delivers method, headers and body and returns the reply", "[http]") {
  HttpExchange received;
  std::mutex mu;
  HttpTestServer server([&](const HttpExchange& request) {
    std::lock_guard<std::mutex> lock(mu);
    received = request;
    HttpReply reply = HttpReply::json(201, R"({"created":1})");
    reply.headers.emplace_back("X-Request-Id", "abc");
    return reply;
  });
  std::string big(200000, 'x');  // larger than any single socket read
  HttpResponse response;
  REQUIRE(http_send(post(server, big), fast_policy(), &response).ok());
  CHECK(response.status == 201);
  CHECK(response.body == R"({"created":1})");
  CHECK(response.headers.at("x-request-id") == "abc");
  CHECK(received.method == "POST");
  CHECK(received.path == "/v1/things");
  CHECK(received.headers.at("authorization") == "Bearer sk-secret-123");
  CHECK(received.body == big);
  CHECK(server.requests() == 1);
}

TEST_CASE("http_send returns a 4xx at once, without retrying", "[http]") {
  HttpTestServer server([](const HttpExchange&) { return HttpReply::json(404, R"({"error":"no"})"); });
  HttpResponse response;
  REQUIRE(http_send(post(server), fast_policy(), &response).ok());
  CHECK(response.status == 404);
  CHECK(server.requests() == 1);
}

TEST_CASE("http_send retries a 429 after the Retry-After seconds", "[http]") {
  HttpTestServer server = failing_then_ok(1, HttpReply::too_many_requests(1));
  auto start = std::chrono::steady_clock::now();
  HttpResponse response;
  REQUIRE(http_send(post(server), fast_policy(), &response).ok());
  CHECK(response.status == 200);
  CHECK(server.requests() == 2);
  CHECK(seconds_since(start) >= 0.95);
}

TEST_CASE("http_send honours a Retry-After given as an HTTP date", "[http]") {
  char date[64];
  std::time_t when = std::time(nullptr) + 2;
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", std::gmtime(&when));
  HttpReply limited = HttpReply::json(429, "{}");
  limited.headers.emplace_back("Retry-After", date);
  HttpTestServer server = failing_then_ok(1, limited);
  auto start = std::chrono::steady_clock::now();
  HttpResponse response;
  REQUIRE(http_send(post(server), fast_policy(), &response).ok());
  CHECK(server.requests() == 2);
  CHECK(seconds_since(start) >= 0.9);  // the date has one-second resolution
}

TEST_CASE("http_send reuses the thread's connection to a keep-alive server", "[http]") {
  HttpTestServer server([](const HttpExchange&) { return HttpReply::json(200, R"({"ok":true})"); },
                        /*lifetime_seconds=*/60, /*keep_alive=*/true);
  for (int i = 0; i < 5; ++i) {
    HttpResponse response;
    REQUIRE(http_send(post(server), fast_policy(), &response).ok());
    CHECK(response.status == 200);
  }
  CHECK(server.requests() == 5);
  CHECK(server.connections() == 1);
}

TEST_CASE("http_send caps a Retry-After too large for a double", "[http]") {
  HttpReply limited = HttpReply::json(429, "{}");
  limited.headers.emplace_back("Retry-After", std::string(400, '9'));  // std::stod would throw
  HttpTestServer server = failing_then_ok(1, limited);
  RetryPolicy policy = fast_policy();
  policy.max_backoff_seconds = 0.1;
  HttpResponse response;
  REQUIRE(http_send(post(server), policy, &response).ok());
  CHECK(response.status == 200);
  CHECK(server.requests() == 2);
}

TEST_CASE("http_send retries 500s, timeouts and dropped connections", "[http]") {
  SECTION("500") {
    HttpTestServer server = failing_then_ok(2, HttpReply::json(500, R"({"error":"boom"})"));
    HttpResponse response;
    REQUIRE(http_send(post(server), fast_policy(), &response).ok());
    CHECK(response.status == 200);
    CHECK(server.requests() == 3);
  }
  SECTION("timeout") {
    HttpReply slow = HttpReply::json(200, R"({"late":true})");
    slow.delay_seconds = 3;
    HttpTestServer server = failing_then_ok(1, slow);
    RetryPolicy policy = fast_policy();
    policy.timeout_seconds = 0.5;
    HttpResponse response;
    REQUIRE(http_send(post(server), policy, &response).ok());
    CHECK(response.body == R"({"ok":true})");
    CHECK(server.requests() == 2);
  }
  SECTION("dropped connection") {
    HttpTestServer server = failing_then_ok(2, HttpReply::dropped());
    HttpResponse response;
    REQUIRE(http_send(post(server), fast_policy(), &response).ok());
    CHECK(response.status == 200);
    CHECK(server.requests() == 3);
  }
}

TEST_CASE("http_send gives up after the attempt limit with kUnavailable, never quoting headers", "[http]") {
  HttpTestServer server(
      [](const HttpExchange&) { return HttpReply::json(503, R"({"error":"overloaded"})"); });
  HttpResponse response;
  embedapt::Status s = http_send(post(server), fast_policy(), &response);
  REQUIRE(s.code() == Code::kUnavailable);
  CHECK(server.requests() == 4);
  CHECK(s.message().find(server.base_url() + "/v1/things") != std::string::npos);
  CHECK(s.message().find("4 attempts") != std::string::npos);
  CHECK(s.message().find("HTTP 503") != std::string::npos);
  CHECK(s.message().find("overloaded") != std::string::npos);
  CHECK(s.message().find("sk-secret-123") == std::string::npos);
}

TEST_CASE("http_send quotes a failing reply as one bounded line, without the request's key", "[http]") {
  // The key sits where a message cut at 300 bytes would have kept its first
  // bytes; the reply also spans lines and clears the terminal.
  const std::string reply =
      "line one\nline two\x1b[2J" + std::string(270, 'x') + "sk-secret-123" + std::string(20000, 'y');
  HttpTestServer server([&](const HttpExchange&) { return HttpReply::json(503, reply); });
  RetryPolicy policy = fast_policy();
  policy.max_attempts = 1;
  HttpResponse response;
  embedapt::Status s = http_send(post(server), policy, &response);
  REQUIRE(s.code() == Code::kUnavailable);
  CHECK(s.message().find("line one line two") != std::string::npos);
  CHECK(s.message().find_first_of("\n\r\x1b") == std::string::npos);
  CHECK(s.message().find("sk-sec") == std::string::npos);
  CHECK(s.message().size() < 600);
}

TEST_CASE("a path is appended before a base URL's query string", "[http]") {
  using embedapt::url_with_path;
  CHECK(url_with_path("https://h/v1", "/embeddings") == "https://h/v1/embeddings");
  CHECK(url_with_path("https://h/v1/", "/embeddings") == "https://h/v1/embeddings");
  CHECK(url_with_path("https://h/v1?api-version=2", "/embeddings") ==
        "https://h/v1/embeddings?api-version=2");
  CHECK(url_with_path("https://h/v1#frag", "/chat/completions") == "https://h/v1/chat/completions#frag");
}

TEST_CASE("http_send reports a refused connection as kUnavailable, naming the host but no password",
          "[http]") {
  int port;
  {
    HttpTestServer gone([](const HttpExchange&) { return HttpReply::json(200, "{}"); });
    port = gone.port();
  }
  HttpRequest request;
  request.url = "http://user:s3cretPASS@127.0.0.1:" + std::to_string(port) + "/v1/things";
  RetryPolicy policy = fast_policy();
  policy.max_attempts = 2;
  HttpResponse response;
  embedapt::Status s = http_send(request, policy, &response);
  CHECK(s.code() == Code::kUnavailable);
  CHECK(s.message().find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(s.message().find("s3cretPASS") == std::string::npos);  // it was quoted twice
}

TEST_CASE("messages name a URL without its password or query string", "[http]") {
  using embedapt::printable_url;
  CHECK(printable_url("http://user:s3cret@127.0.0.1:9/v1?key=k") == "http://[redacted]@127.0.0.1:9/v1");
  CHECK(printable_url("https://api.example.com/v1") == "https://api.example.com/v1");
  CHECK(printable_url("https://host/v1/a@b") == "https://host/v1/a@b");  // an @ in the path is no password
  CHECK(printable_url("user:pw@host:8080") == "[redacted]@host:8080");
}

TEST_CASE("http_send refuses a timeout curl would take as none", "[http]") {
  HttpRequest request;
  request.url = "http://127.0.0.1:9/v1";
  HttpResponse response;
  for (double timeout : {std::nan(""), 0.0, -1.0, 1e300, 86401.0}) {
    CAPTURE(timeout);
    RetryPolicy policy = fast_policy();
    policy.timeout_seconds = timeout;
    CHECK(http_send(request, policy, &response).code() == Code::kInvalidArgument);
    CHECK_FALSE(timeout_problem(timeout).empty());
  }
  // The bounds callers check up front are the ones http_send keeps
  // (generate's --timeout took (0, 86400] while http_send took 0.001 to 1e6).
  CHECK(timeout_problem(0.001).empty());
  CHECK(timeout_problem(86400).empty());
  CHECK_FALSE(timeout_problem(0.0005).empty());
}

TEST_CASE("http_send refuses a malformed URL without retrying", "[http]") {
  HttpRequest request;
  request.url = "htp:/nowhere";
  HttpResponse response;
  embedapt::Status s = http_send(request, fast_policy(), &response);
  CHECK(s.code() == Code::kInvalidArgument);
}

TEST_CASE("http_send refuses a response body past the request's limit, without retrying", "[http]") {
  HttpTestServer server(
      [](const HttpExchange&) { return HttpReply::json(200, std::string(5000, ' ') + "{}"); });
  HttpRequest request = post(server);
  request.max_response_bytes = 4096;
  HttpResponse response;
  Status s = http_send(request, fast_policy(), &response);
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("exceeds the limit of 4096 bytes") != std::string::npos);
  CHECK(server.requests() == 1);
  request.max_response_bytes = 8192;
  REQUIRE(http_send(request, fast_policy(), &response).ok());
  CHECK(response.body.size() == 5002);
}
