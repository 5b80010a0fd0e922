// HTTP client (libcurl) with the retry discipline every remote call needs.
//
// Retries 429, 5xx, timeouts and connection failures with exponential backoff
// and full jitter, honouring a Retry-After header; other statuses return at
// once. Request headers (which carry API keys) never appear in errors or logs.
// Thread-safe: each thread sends through its own curl handle, which keeps
// keep-alive connections open between that thread's calls; callers may run
// several requests at once from several threads (see the openai: embedder).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  bool http2 = false;  // HTTP/2 from the first byte, no upgrade (gRPC over cleartext); not kept alive
  // A longer response body fails the call with kCorruption, without retrying:
  // a reply that large is no embedding or chat reply, and it must not exhaust
  // memory.
  size_t max_response_bytes = size_t{64} << 20;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased; HTTP/2 trailers too
};

struct RetryPolicy {
  int max_attempts = 6;
  double initial_backoff_seconds = 0.5;
  double max_backoff_seconds = 30;
  double timeout_seconds = 120;  // per attempt; timeout_problem() says which are taken
};

// Why http_send refuses `seconds` as RetryPolicy::timeout_seconds (0.001 to
// 86400: curl counts whole milliseconds, 0 meaning no timeout at all, and a
// day is past any request's patience), or "" when it takes them. For callers
// that check their settings before starting work.
std::string timeout_problem(double seconds);

// Sends `request`, retrying as above. ok() with the response for any final
// status (the caller judges 4xx); Code::kUnavailable when retries ran out,
// naming the URL (never the headers or query string) and the last failure;
// kInvalidArgument, without retrying, for a URL curl cannot use. A
// Retry-After longer than policy.max_backoff_seconds is cut to it.
Status http_send(const HttpRequest& request, const RetryPolicy& policy, HttpResponse* response);

// `url` as it may appear in messages and files: without a user name and
// password ("https://user:secret@host/v1") and without a query string,
// which some services use for keys.
std::string printable_url(const std::string& url);

// `base_url` with `path` ("/embeddings") appended to its path, before any
// query string or fragment ("https://host/v1?api-version=2" gives
// "https://host/v1/embeddings?api-version=2"; appended at the end, the path
// became part of the query).
std::string url_with_path(const std::string& base_url, const std::string& path);

// `text` with every occurrence of `secret` (an API key) replaced by
// "[redacted]": servers quote the key they refused back in their replies.
std::string redacted(std::string text, const std::string& secret);

}  // namespace embedapt
