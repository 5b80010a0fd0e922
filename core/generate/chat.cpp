#include "core/generate/chat.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/common/json.h"
#include "core/common/utf8.h"

namespace embedapt {

namespace {

using nlohmann::json;

// obj[key] if obj is an object holding key, else nullptr. Replies are read
// through const lookups only: json's operator[] throws on a non-object.
const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// The server's own explanation of an error ({"error": {"message": ...}}),
// else the body itself, as a message may quote it.
std::string error_message(const std::string& body) {
  json parsed;
  if (!parse_json(body, "", &parsed).ok()) return quotable(body);
  const json* message = member(parsed, "error");
  if (message != nullptr) message = member(*message, "message");
  return quotable(message != nullptr && message->is_string() ? message->get<std::string>() : body);
}

// obj[key] when it is a token count one reply can have, else 0 (unknown):
// a server reporting -3000 made a negative cost, 2^63 - 1 overflowed the sum.
int64_t token_count(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return 0;
  const int64_t count = it->is_number_unsigned()
                            ? int64_t(std::min<uint64_t>(it->get<uint64_t>(), kMaxReplyTokens + 1))
                            : it->get<int64_t>();
  return count >= 0 && count <= kMaxReplyTokens ? count : 0;
}

}  // namespace

Status chat_complete(const ChatOptions& options, const std::string& prompt, std::string* reply,
                     ChatUsage* usage) {
  HttpRequest request;
  request.url = url_with_path(options.base_url, "/chat/completions");
  // A completion of a few questions is kilobytes, and a reply is parsed
  // whole at some 30 bytes of memory per byte: the client's general 64 MiB
  // limit let each worker's reply of junk take 2 GB.
  request.max_response_bytes = size_t{4} << 20;
  request.headers = {"Content-Type: application/json"};
  if (!options.api_key.empty()) request.headers.push_back("Authorization: Bearer " + options.api_key);
  json body = {{"model", options.model},
               {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
               {"temperature", options.temperature}};
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);

  HttpResponse response;
  EMBEDAPT_RETURN_IF_ERROR(http_send(request, options.retry, &response));
  // The key out of everything the reply brings: servers quote the key they
  // refuse (taken out before a message cuts the reply, which could leave its
  // first bytes), and a question quoting it would be written to the dataset.
  const std::string answer = redacted(response.body, options.api_key);
  if (response.status == 429 || response.status >= 500) {
    return Status::Unavailable(printable_url(request.url) + ": HTTP " + std::to_string(response.status) +
                               ": " + error_message(answer));
  }
  if (response.status < 200 || response.status >= 300) {
    return Status::InvalidArgument(printable_url(request.url) + ": HTTP " + std::to_string(response.status) +
                                   ": " + error_message(answer));
  }
  return parse_chat_completion(answer, reply, usage).WithContext(printable_url(request.url));
}

Status parse_chat_completion(const std::string& body, std::string* reply, ChatUsage* usage) {
  json parsed;
  // A lone surrogate escape ("\ud800") or a cut-off body: the parser's reason.
  const Status json_ok = parse_json(body, "not a chat completion", &parsed);
  if (!json_ok.ok()) return Status::Corruption(json_ok.message());
  const json* choices = member(parsed, "choices");
  const json* content = nullptr;
  if (choices != nullptr && choices->is_array() && !choices->empty()) {
    const json* message = member(choices->front(), "message");
    if (message != nullptr) content = member(*message, "content");
  }
  if (content == nullptr || !content->is_string()) {
    return Status::Corruption("not a chat completion: " + quotable(body));
  }
  *reply = content->get<std::string>();
  *usage = ChatUsage{};
  const json* counts = member(parsed, "usage");
  if (counts != nullptr && counts->is_object()) {
    usage->input_tokens = token_count(*counts, "prompt_tokens");
    usage->output_tokens = token_count(*counts, "completion_tokens");
  }
  return Status::OK();
}

}  // namespace embedapt
