// One question to an OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama,
// llama.cpp's server): POST {base_url}/chat/completions (before any query string).
#pragma once

#include <cstdint>
#include <string>

#include "core/common/http.h"
#include "embedapt/status.h"

namespace embedapt {

struct ChatOptions {
  std::string base_url;  // e.g. "https://api.openai.com/v1"; a trailing '/' is ignored
  std::string model;
  std::string api_key;     // sent as a bearer token when set; never in a message, reply or file
  double temperature = 0;  // 0: the same chunk gives the same questions where the server allows
  RetryPolicy retry;       // 429 and 5xx are retried there, honouring Retry-After
};

// The most tokens one reply's usage may count; a count past it (or below 0)
// is no count (usage is summed over a run and priced).
constexpr int64_t kMaxReplyTokens = int64_t{1} << 40;

struct ChatUsage {
  int64_t input_tokens = 0;   // usage.prompt_tokens
  int64_t output_tokens = 0;  // usage.completion_tokens
};

// Sends `prompt` as the single user message; *reply is the first choice's
// content, *usage the reply's usage (zeros when the server omits it or
// reports counts no reply has). The key is taken out of everything the
// server sends back, the reply included.
// Unavailable when retries ran out, InvalidArgument for another non-2xx
// status (a bad key, an unknown model: the server's message is quoted),
// Corruption for a reply that is not a chat completion.
Status chat_complete(const ChatOptions& options, const std::string& prompt, std::string* reply,
                     ChatUsage* usage);

// The reply and usage of a 2xx chat completion body; Corruption for anything
// else, whatever its JSON shape.
Status parse_chat_completion(const std::string& body, std::string* reply, ChatUsage* usage);

}  // namespace embedapt
