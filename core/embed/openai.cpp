#include "core/embed/openai.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/common/json.h"
#include "core/common/progress.h"
#include "core/common/utf8.h"
#include "embedapt/adapter.h"

namespace embedapt {

namespace {

using nlohmann::json;

constexpr const char* kDefaultBaseUrl = "https://api.openai.com/v1";

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' ? value : fallback;
}

// "host" or "host:port" of `url`, or "" when it is not a URL; with
// `path`, its path too, less trailing slashes ("/v1" of ".../v1/").
std::string host_of(const std::string& url, std::string* path = nullptr) {
  CURLU* parsed = curl_url();
  std::string result;
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    char* port = nullptr;
    char* url_path = nullptr;
    if (curl_url_get(parsed, CURLUPART_HOST, &host, 0) == CURLUE_OK) result = host;
    if (curl_url_get(parsed, CURLUPART_PORT, &port, 0) == CURLUE_OK) result += std::string(":") + port;
    if (path != nullptr && curl_url_get(parsed, CURLUPART_PATH, &url_path, 0) == CURLUE_OK) {
      *path = url_path;
      while (!path->empty() && path->back() == '/') path->pop_back();
    }
    curl_free(host);
    curl_free(port);
    curl_free(url_path);
  }
  curl_url_cleanup(parsed);
  return result;
}

// The message an OpenAI-style error body carries ({"error": {"message": ...}}
// or {"error": "..."}), else the body itself, as a message may quote it.
std::string server_message(const std::string& body) {
  json parsed;
  if (parse_json(body, "", &parsed).ok() && parsed.is_object() && parsed.contains("error")) {
    const json& error = parsed["error"];
    if (error.is_string()) return quotable(error.get<std::string>());
    if (error.is_object() && error.contains("message") && error["message"].is_string()) {
      return quotable(error["message"].get<std::string>());
    }
  }
  return quotable(body);
}

class OpenAIEmbedder : public Embedder {
 public:
  OpenAIEmbedder(OpenAIOptions options, std::string identity)
      : options_(std::move(options)),
        identity_(std::move(identity)),
        url_(url_with_path(options_.base_url, "/embeddings")),
        dim_(options_.known_dim > 0 ? options_.known_dim : options_.dimensions) {}

  // Learns the dimension from one request when the options did not say it.
  Status probe() {
    if (dim_ > 0) return Status::OK();
    std::vector<std::vector<float>> rows;
    EMBEDAPT_RETURN_IF_ERROR(request({"dimension probe"}, &rows));
    // A reply of millions of numbers parses as one embedding; sized by it,
    // the first batch asked for gigabytes.
    if (rows[0].size() > size_t(kMaxDim)) {
      return fail(Code::kCorruption, "the dimension probe returned " + std::to_string(rows[0].size()) +
                                         " dimensions; at most " + std::to_string(kMaxDim) + " are taken");
    }
    dim_ = static_cast<int>(rows[0].size());
    return Status::OK();
  }

  int dim() const override { return dim_; }
  const std::string& identity() const override { return identity_; }

  Status embed(const std::vector<std::string>& texts, EmbedSide, std::vector<float>* out) override {
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i].empty()) {
        return Status::InvalidArgument(where() + ": text " + std::to_string(i) +
                                       " is empty; the embeddings API rejects empty input");
      }
    }
    const size_t batch = static_cast<size_t>(std::max(1, options_.batch_size));
    const size_t batches = (texts.size() + batch - 1) / batch;
    const size_t base = out->size();
    out->resize(base + texts.size() * dim_);

    Progress progress("embedding", texts.size(), options_.show_progress);
    std::atomic<size_t> next_batch{0};
    std::mutex mu;
    Status first_error;
    auto work = [&] {
      for (size_t b = next_batch++; b < batches; b = next_batch++) {
        size_t begin = b * batch;
        size_t end = std::min(texts.size(), begin + batch);
        std::vector<std::vector<float>> rows;
        Status s = request(std::vector<std::string>(texts.begin() + begin, texts.begin() + end), &rows);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.ok()) first_error = s;
          next_batch = batches;  // the others stop after their current request
          return;
        }
        for (size_t i = 0; i < rows.size(); ++i) {
          std::copy(rows[i].begin(), rows[i].end(), out->begin() + base + (begin + i) * dim_);
        }
        progress.add(end - begin);
      }
    };
    size_t workers = std::min<size_t>(std::max(1, options_.max_in_flight), batches);
    std::vector<std::thread> threads;
    for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    if (!first_error.ok()) out->resize(base);
    return first_error;
  }

 private:
  std::string where() const { return "openai:" + options_.model + " at " + printable_url(options_.base_url); }

  // Every message leaves with the key taken out (servers quote what they refuse).
  Status fail(Code code, const std::string& problem) const {
    std::string message = redacted(where() + ": " + problem, options_.api_key);
    switch (code) {
      case Code::kUnavailable:
        return Status::Unavailable(message);
      case Code::kNotFound:
        return Status::NotFound(message);
      case Code::kFailedPrecondition:
        return Status::FailedPrecondition(message);
      case Code::kCorruption:
        return Status::Corruption(message);
      default:
        return Status::InvalidArgument(message);
    }
  }

  // The largest reply `n` texts can have: their numbers written out (a float
  // in JSON takes at most 25 bytes, 32 with its comma and spaces) and room
  // for the rest, for at most kMaxDim dimensions while probing. A reply is
  // parsed whole, at some 30 bytes of memory for each byte read, so the
  // HTTP client's general 64 MiB limit let one reply of junk take 2 GB (and
  // max_in_flight of them at once).
  size_t reply_limit(size_t n) const {
    const size_t dim = dim_ > 0 ? size_t(dim_) : size_t(kMaxDim);
    return n * dim * 32 + (size_t{1} << 16);
  }

  // One POST for `texts`; *rows receives their vectors in input order.
  Status request(const std::vector<std::string>& texts, std::vector<std::vector<float>>* rows) const {
    json body = {{"model", options_.model}, {"input", texts}};
    if (options_.dimensions > 0) body["dimensions"] = options_.dimensions;
    HttpRequest http;
    http.url = url_;
    http.max_response_bytes = reply_limit(texts.size());
    http.headers = {"Content-Type: application/json"};
    if (!options_.api_key.empty()) http.headers.push_back("Authorization: Bearer " + options_.api_key);
    http.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    HttpResponse response;
    Status sent = http_send(http, options_.retry, &response);
    if (!sent.ok()) return fail(sent.code(), sent.message());
    if (response.status < 200 || response.status >= 300) {
      // The key out before the body is cut, which could leave its first bytes.
      std::string problem = "HTTP " + std::to_string(response.status) + ": " +
                            server_message(redacted(response.body, options_.api_key));
      if (response.status == 401 || response.status == 403) {
        return fail(Code::kFailedPrecondition, problem + " (check the API key)");
      }
      return fail(response.status == 404 ? Code::kNotFound : Code::kInvalidArgument, problem);
    }
    return parse(response.body, texts.size(), rows);
  }

  Status parse(const std::string& body, size_t n, std::vector<std::vector<float>>* rows) const {
    Status parsed =
        parse_openai_embeddings(redacted(body, options_.api_key), n, static_cast<size_t>(dim_), rows);
    return parsed.ok() ? parsed : fail(parsed.code(), parsed.message());
  }

  const OpenAIOptions options_;
  const std::string identity_;
  const std::string url_;
  int dim_;  // set once, before any embed()
};

}  // namespace

Status parse_openai_embeddings(const std::string& body, size_t n, size_t dim,
                               std::vector<std::vector<float>>* rows) {
  json parsed;
  // NaN, Infinity or a cut-off body: the parser's reason, not "no data".
  const Status json_ok = parse_json(body, "response", &parsed);
  if (!json_ok.ok()) return Status::Corruption(json_ok.message());
  const auto data = parsed.is_object() ? parsed.find("data") : parsed.end();
  if (!parsed.is_object() || data == parsed.end() || !data->is_array()) {
    return Status::Corruption("response has no \"data\" array: " + quotable(body, 200));
  }
  if (data->size() != n) {
    return Status::Corruption("sent " + std::to_string(n) + " texts, got " + std::to_string(data->size()) +
                              " embeddings");
  }
  rows->assign(n, {});
  size_t expected = dim;  // 0 while probing: the first row decides
  for (size_t i = 0; i < n; ++i) {
    const json& item = (*data)[i];
    const auto embedding = item.is_object() ? item.find("embedding") : item.end();
    if (!item.is_object() || embedding == item.end() || !embedding->is_array()) {
      return Status::Corruption("data[" + std::to_string(i) + "] has no \"embedding\" array");
    }
    size_t index = i;
    if (auto given = item.find("index"); given != item.end()) {
      if (!given->is_number_unsigned() || given->get<size_t>() >= n) {
        return Status::Corruption("data[" + std::to_string(i) + "] has a bad \"index\"");
      }
      index = given->get<size_t>();
    }
    std::vector<float>& row = (*rows)[index];
    if (!row.empty()) return Status::Corruption("index " + std::to_string(index) + " appears twice");
    for (const json& v : *embedding) {
      if (!v.is_number()) return Status::Corruption("embedding holds a non-number");
      row.push_back(v.get<float>());
      // 1e999, or 1e300 narrowed to float: never cached or indexed.
      if (!std::isfinite(row.back())) return Status::Corruption("embedding holds a non-finite number");
    }
    if (expected == 0) expected = row.size();
    if (row.empty() || row.size() != expected) {
      return Status::Corruption("an embedding has " + std::to_string(row.size()) + " dimensions, expected " +
                                std::to_string(expected));
    }
  }
  return Status::OK();
}

OpenAIOptions openai_options(const std::string& model, const EmbedderOptions& options) {
  OpenAIOptions result;
  result.model = model;
  result.base_url =
      !options.api_base_url.empty() ? options.api_base_url : env_or("OPENAI_BASE_URL", kDefaultBaseUrl);
  while (!result.base_url.empty() && result.base_url.back() == '/') result.base_url.pop_back();
  result.api_key = !options.api_key.empty() ? options.api_key : env_or("OPENAI_API_KEY", "");
  result.dimensions = options.dimensions;
  result.show_progress = options.show_progress;
  result.retry.timeout_seconds = options.openai_timeout_seconds;
  return result;
}

std::string openai_identity(const OpenAIOptions& options) {
  // The path names the backend behind proxies that route by it, and Azure's
  // deployments ("/openai/deployments/NAME"): two paths on one host may be
  // two models. The API's own root ("/v1", or none) is left out, so that
  // identities from before the path counted stay as they were.
  std::string path;
  const std::string host = host_of(options.base_url, &path);
  if (path == "/v1") path.clear();
  std::string identity = "openai:" + options.model + "@" + (host.empty() ? options.base_url : host + path);
  if (options.dimensions > 0) identity += "/dimensions=" + std::to_string(options.dimensions);
  return identity;
}

Status open_openai_embedder(const OpenAIOptions& options, std::unique_ptr<Embedder>* out) {
  if (options.model.empty()) return Status::InvalidArgument("openai: no model named (use openai:MODEL)");
  if (options.dimensions < 0) {  // was asked of the API, then compared with as unsigned: 2^64 - 3
    return Status::InvalidArgument("openai: dimensions must be positive (0: the model's), got " +
                                   std::to_string(options.dimensions));
  }
  if (host_of(options.base_url).empty()) {
    return Status::InvalidArgument("openai: base URL '" + printable_url(options.base_url) + "' is not a URL");
  }
  auto embedder = std::make_unique<OpenAIEmbedder>(options, openai_identity(options));
  EMBEDAPT_RETURN_IF_ERROR(embedder->probe());
  *out = std::move(embedder);
  return Status::OK();
}

}  // namespace embedapt
