#include "core/common/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <random>
#include <thread>

#include "core/common/utf8.h"

namespace embedapt {

namespace {

void global_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct BodySink {
  std::string* body;
  size_t limit;
  bool overflowed = false;
};

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  const size_t n = size * count;
  if (n > sink->limit - sink->body->size()) {
    sink->overflowed = true;
    return 0;  // curl stops the transfer with CURLE_WRITE_ERROR
  }
  sink->body->append(data, n);
  return n;
}

std::string trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
  return s;
}

size_t append_header(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) headers->clear();  // a new response (after 100 Continue, redirects)
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = trim(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    (*headers)[name] = trim(line.substr(colon + 1));
  }
  return size * count;
}

// The key a request's "Authorization: Bearer KEY" header carries: a server
// refusing it may quote it back in the body a failure message shows (taken
// out before the body is cut, which could leave the key's first bytes).
std::string bearer_token(const std::vector<std::string>& headers) {
  static const std::string kPrefix = "authorization: bearer ";
  for (const std::string& header : headers) {
    if (header.size() > kPrefix.size() &&
        std::equal(kPrefix.begin(), kPrefix.end(), header.begin(),
                   [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); })) {
      return trim(header.substr(kPrefix.size()));
    }
  }
  return "";
}

// Failures a retry cannot fix: the request itself is wrong.
bool permanent(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
    case CURLE_NOT_BUILT_IN:
      return true;
    default:
      return false;
  }
}

// Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or
// a negative value when it is absent or unreadable.
double retry_after_seconds(const std::map<std::string, std::string>& headers) {
  auto it = headers.find("retry-after");
  if (it == headers.end() || it->second.empty()) return -1;
  const std::string& value = it->second;
  if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
    // strtod, not stod: a value too large for a double is HUGE_VAL (the
    // caller caps it), not an exception out of a worker thread.
    return std::strtod(value.c_str(), nullptr);
  }
  time_t when = curl_getdate(value.c_str(), nullptr);
  if (when < 0) return -1;
  return std::max(0.0, std::difftime(when, std::time(nullptr)));
}

// "Full jitter": uniform in [0, min(cap, base * 2^attempt)], so clients that
// failed together do not retry together.
double backoff_seconds(const RetryPolicy& policy, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  double ceiling = std::min(policy.max_backoff_seconds,
                            policy.initial_backoff_seconds * std::pow(2.0, std::min(attempt, 30)));
  return std::uniform_real_distribution<double>(0, std::max(0.0, ceiling))(rng);
}

struct Attempt {
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  bool body_too_large = false;
};

// This thread's easy handle, reset for a new request. A handle keeps its
// connection cache across requests, so a worker sending batch after batch to
// one server reuses its keep-alive connection (and TLS session) instead of
// connecting anew each time. One per thread: a handle is not thread-safe.
CURL* thread_handle() {
  struct Handle {
    CURL* curl = nullptr;
    ~Handle() {
      if (curl != nullptr) curl_easy_cleanup(curl);
    }
  };
  thread_local Handle handle;
  if (handle.curl == nullptr) {
    handle.curl = curl_easy_init();
  } else {
    curl_easy_reset(handle.curl);  // options only: connections and caches stay
  }
  return handle.curl;
}

Attempt send_once(const HttpRequest& request, const RetryPolicy& policy, HttpResponse* response) {
  Attempt result;
  CURL* curl = thread_handle();
  if (curl == nullptr) {
    result.curl = CURLE_FAILED_INIT;
    result.curl_error = "curl_easy_init failed";
    return result;
  }
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  char error[CURL_ERROR_SIZE] = {0};
  response->body.clear();
  response->headers.clear();

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // thread-safe timeouts
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(policy.timeout_seconds * 1000));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  BodySink sink{&response->body, request.max_response_bytes};
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response->headers);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  if (request.http2) {
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    // A connection per request: a second request on a kept prior-knowledge
    // connection fails (seen with curl 7.88 against Milvus 2.3's gRPC port),
    // and the callers send few such requests.
    curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
  }
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  }

  result.curl = curl_easy_perform(curl);
  result.body_too_large = sink.overflowed;
  if (result.curl == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
  } else {
    result.curl_error = error[0] != '\0' ? error : curl_easy_strerror(result.curl);
  }
  // Nothing the handle keeps may point at this frame's header list or error buffer.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  return result;
}

}  // namespace

std::string printable_url(const std::string& url) {
  std::string out = url.substr(0, url.find('?'));
  const size_t scheme = out.find("://");
  const size_t host = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t path = out.find('/', host);
  const size_t at = out.rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at != std::string::npos && at >= host) out.replace(host, at + 1 - host, "[redacted]@");
  return out;
}

std::string url_with_path(const std::string& base_url, const std::string& path) {
  const size_t tail = base_url.find_first_of("?#");
  std::string head = base_url.substr(0, tail);
  while (!head.empty() && head.back() == '/') head.pop_back();
  return head + path + (tail == std::string::npos ? "" : base_url.substr(tail));
}

std::string redacted(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (size_t at; (at = text.find(secret)) != std::string::npos;)
    text.replace(at, secret.size(), "[redacted]");
  return text;
}

std::string timeout_problem(double seconds) {
  // Written so that NaN fails: a NaN timeout reached curl as none.
  if (seconds >= 0.001 && seconds <= 86400) return "";
  return "a timeout must be 0.001 to 86400 seconds, got " + std::to_string(seconds);
}

Status http_send(const HttpRequest& request, const RetryPolicy& policy, HttpResponse* response) {
  global_init_once();
  const std::string where = request.method + " " + printable_url(request.url);
  const std::string timeout = timeout_problem(policy.timeout_seconds);
  if (!timeout.empty()) return Status::InvalidArgument(where + ": " + timeout);
  const int attempts = std::max(1, policy.max_attempts);
  std::string last_failure;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    Attempt result = send_once(request, policy, response);
    double wait = -1;
    if (result.body_too_large) {
      return Status::Corruption(where + ": the response body exceeds the limit of " +
                                std::to_string(request.max_response_bytes) + " bytes");
    }
    if (result.curl != CURLE_OK) {
      last_failure = result.curl_error;
      if (permanent(result.curl)) return Status::InvalidArgument(last_failure).WithContext(where);
    } else if (response->status == 429 || response->status >= 500) {
      last_failure = "HTTP " + std::to_string(response->status) + ": " +
                     quotable(redacted(response->body, bearer_token(request.headers)));
      wait = retry_after_seconds(response->headers);
    } else {
      return Status::OK();
    }
    if (attempt + 1 == attempts) break;
    if (wait < 0) wait = backoff_seconds(policy, attempt);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(wait, policy.max_backoff_seconds)));
  }
  return Status::Unavailable(where + ": gave up after " + std::to_string(attempts) +
                             " attempts; last failure: " + last_failure);
}

}  // namespace embedapt
