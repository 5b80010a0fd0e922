// A real HTTP/1.1 server on 127.0.0.1 for tests: an ephemeral port, one
// thread per connection, and a handler that decides each reply, so a test can
// play an OpenAI-compatible API and inject the failures clients must survive
// (slow answers, dropped connections, 429 with Retry-After, 500).
//
// Every connection is closed after one reply ("Connection: close") unless the
// server is made with keep_alive, which serves requests on a connection until
// the client closes it (or 10 s pass without one). The server
// is bounded: it refuses to run past `lifetime_seconds`, so a hung test cannot
// leave it serving, and the destructor stops it and joins its threads.
//
//   HttpTestServer server([](const HttpExchange& request) {
//     return HttpReply::json(200, R"({"ok":true})");
//   });
//   std::string url = server.base_url() + "/v1/embeddings";
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace embedapt::testing {

// One request as the server received it.
struct HttpExchange {
  std::string method;
  std::string path;                            // the request target, e.g. "/v1/embeddings"
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// What the server does with a request.
struct HttpReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  double delay_seconds = 0;  // wait this long before answering (to trigger client timeouts)
  bool drop = false;         // close the connection without answering

  static HttpReply json(int status, std::string body);
  // 429 with "Retry-After: <seconds>".
  static HttpReply too_many_requests(int retry_after_seconds);
  static HttpReply dropped();
};

// Called on the connection's thread, possibly concurrently: must be thread-safe.
using HttpHandler = std::function<HttpReply(const HttpExchange&)>;

class HttpTestServer {
 public:
  explicit HttpTestServer(HttpHandler handler, double lifetime_seconds = 300, bool keep_alive = false);
  ~HttpTestServer();

  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  // Requests fully read and passed to the handler so far.
  int requests() const { return requests_.load(); }
  // Connections accepted so far.
  int connections() const { return connections_accepted_.load(); }

 private:
  void accept_loop(double lifetime_seconds);
  void serve(int fd);
  // Sleeps up to `seconds`, waking early when the server stops.
  void pause(double seconds) const;

  HttpHandler handler_;
  const bool keep_alive_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;  // guarded by mu_
};

}  // namespace embedapt::testing
