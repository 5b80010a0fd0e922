#include "tests/support/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace embedapt::testing {

namespace {

constexpr size_t kMaxRequestBytes = 64 << 20;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Writes all of `data`; false when the peer went away (e.g. it timed out).
bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads one request from `fd` (Content-Length bodies, as curl sends them),
// answering "Expect: 100-continue". False on a malformed or truncated request,
// after 10 s without data, or once `stopping` is set.
bool read_request(int fd, HttpExchange* request, const std::atomic<bool>& stopping) {
  std::string data;
  char buffer[16384];
  size_t header_end = std::string::npos;
  auto read_more = [&]() {
    pollfd p{fd, POLLIN, 0};
    int ready = 0;
    for (int waited_ms = 0; ready == 0 && waited_ms < 10000 && !stopping; waited_ms += 20) {
      ready = ::poll(&p, 1, 20);
    }
    if (ready <= 0) return false;
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    data.append(buffer, static_cast<size_t>(n));
    return data.size() <= kMaxRequestBytes;
  };
  while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more()) return false;
  }
  size_t line_end = data.find("\r\n");
  std::string request_line = data.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return false;
  request->method = request_line.substr(0, sp1);
  request->path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t pos = line_end + 2;
  while (pos < header_end) {
    size_t next = data.find("\r\n", pos);
    std::string line = data.substr(pos, next - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      request->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
    pos = next + 2;
  }
  size_t length = 0;
  auto it = request->headers.find("content-length");
  if (it != request->headers.end()) length = std::stoul(it->second);
  auto expect = request->headers.find("expect");
  if (expect != request->headers.end() && lower(expect->second) == "100-continue") {
    if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return false;
  }
  size_t body_start = header_end + 4;
  while (data.size() - body_start < length) {
    if (!read_more()) return false;
  }
  request->body = data.substr(body_start, length);
  return true;
}

}  // namespace

HttpReply HttpReply::json(int status, std::string body) {
  HttpReply reply;
  reply.status = status;
  reply.headers.emplace_back("Content-Type", "application/json");
  reply.body = std::move(body);
  return reply;
}

HttpReply HttpReply::too_many_requests(int retry_after_seconds) {
  HttpReply reply = json(429, R"({"error":{"message":"rate limited","type":"rate_limit"}})");
  reply.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  return reply;
}

HttpReply HttpReply::dropped() {
  HttpReply reply;
  reply.drop = true;
  return reply;
}

HttpTestServer::HttpTestServer(HttpHandler handler, double lifetime_seconds, bool keep_alive)
    : handler_(std::move(handler)), keep_alive_(keep_alive) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("test server: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error(std::string("test server: cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this, lifetime_seconds] { accept_loop(lifetime_seconds); });
}

HttpTestServer::~HttpTestServer() {
  stopping_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (auto& t : connections) t.join();
}

std::string HttpTestServer::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void HttpTestServer::accept_loop(double lifetime_seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(lifetime_seconds);
  while (!stopping_ && std::chrono::steady_clock::now() < deadline) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    connections_.emplace_back([this, fd] {
      serve(fd);
      ::close(fd);
    });
  }
  stopping_ = true;  // past the lifetime: connection threads wind down too
}

void HttpTestServer::pause(double seconds) const {
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!stopping_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void HttpTestServer::serve(int fd) {
  for (;;) {
    HttpExchange request;
    if (!read_request(fd, &request, stopping_)) return;
    ++requests_;
    HttpReply reply = handler_(request);
    if (reply.delay_seconds > 0) pause(reply.delay_seconds);
    if (reply.drop || stopping_) return;
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) + "\r\n";
    for (const auto& [name, value] : reply.headers)
      out.append(name).append(": ").append(value).append("\r\n");
    out += "Content-Length: " + std::to_string(reply.body.size()) +
           "\r\nConnection: " + (keep_alive_ ? "keep-alive" : "close") + "\r\n\r\n";
    out += reply.body;
    if (!send_all(fd, out) || !keep_alive_) return;
  }
}

}  // namespace embedapt::testing
