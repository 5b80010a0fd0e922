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

// obj[key] if obj is an object holding key, else nullptr. Replies are read
// through const lookups only: json's operator[] throws on a non-object.
const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// The server's own explanation of an error ({"error": {"message": ...}}),
// else the body itself.
std::string error_message(const std::string& body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const json* message = member(parsed, "error");
  if (message != nullptr) message = member(*message, "message");
  return quote(message != nullptr && message->is_string() ? message->get<std::string>() : body);
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
    return Status::Unavailable(printable_url(request.url) + ": HTTP " + std::to_string(response.status) +
                               ": " + error_message(response.body));
  }
  if (response.status < 200 || response.status >= 300) {
    return Status::InvalidArgument(printable_url(request.url) + ": HTTP " + std::to_string(response.status) +
                                   ": " + error_message(response.body));
  }
  return parse_chat_completion(response.body, reply, usage).WithContext(printable_url(request.url));
}

Status parse_chat_completion(const std::string& body, std::string* reply, ChatUsage* usage) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const json* choices = member(parsed, "choices");
  const json* content = nullptr;
  if (choices != nullptr && choices->is_array() && !choices->empty()) {
    const json* message = member(choices->front(), "message");
    if (message != nullptr) content = member(*message, "content");
  }
  if (content == nullptr || !content->is_string()) {
    return Status::Corruption("not a chat completion: " + quote(body));
  }
  *reply = content->get<std::string>();
  *usage = ChatUsage{};
  const json* counts = member(parsed, "usage");
  if (counts != nullptr && counts->is_object()) {
    usage->input_tokens = integer_field(*counts, "prompt_tokens");
    usage->output_tokens = integer_field(*counts, "completion_tokens");
  }
  return Status::OK();
}

}  // namespace embedapt
