#include "core/generate/chat.h"

#include <nlohmann/json.hpp>

namespace embedapt {

namespace {

using nlohmann::json;

constexpr size_t kMaxQuoted = 300;

std::string quote(const std::string& body) {
  std::string s = body.substr(0, kMaxQuoted);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return body.size() > kMaxQuoted ? s + "..." : s;
}

// The server's own explanation of an error ({"error": {"message": ...}}),
// else the body itself.
std::string error_message(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed["error"].is_object() && parsed["error"]["message"].is_string()) {
    return quote(parsed["error"]["message"].get<std::string>());
  }
  return quote(body);
}

// obj[key] when it is an integer, else 0.
int64_t integer_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

Status chat_complete(const ChatOptions& options, const std::string& prompt, std::string* reply,
                     ChatUsage* usage) {
  std::string base = options.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpRequest request;
  request.url = base + "/chat/completions";
  request.headers = {"Content-Type: application/json"};
  if (!options.api_key.empty()) request.headers.push_back("Authorization: Bearer " + options.api_key);
  json body = {{"model", options.model},
               {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
               {"temperature", options.temperature}};
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);

  HttpResponse response;
  EMBEDAPT_RETURN_IF_ERROR(http_send(request, options.retry, &response));
  if (response.status == 429 || response.status >= 500) {
    return Status::Unavailable(request.url + ": HTTP " + std::to_string(response.status) + ": " +
                               error_message(response.body));
  }
  if (response.status < 200 || response.status >= 300) {
    return Status::InvalidArgument(request.url + ": HTTP " + std::to_string(response.status) + ": " +
                                   error_message(response.body));
  }
  json parsed = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  const json* content = nullptr;
  if (parsed.is_object() && parsed["choices"].is_array() && !parsed["choices"].empty()) {
    const json& message = parsed["choices"][0]["message"];
    if (message.is_object() && message.contains("content") && message["content"].is_string()) {
      content = &message["content"];
    }
  }
  if (content == nullptr) {
    return Status::Corruption(request.url + ": not a chat completion: " + quote(response.body));
  }
  *reply = content->get<std::string>();
  *usage = ChatUsage{};
  const json& counts = parsed["usage"];
  if (counts.is_object()) {
    usage->input_tokens = integer_field(counts, "prompt_tokens");
    usage->output_tokens = integer_field(counts, "completion_tokens");
  }
  return Status::OK();
}

}  // namespace embedapt
