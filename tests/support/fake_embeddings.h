// A fake OpenAI-compatible /embeddings endpoint for tests: each text gets a
// deterministic vector derived from its bytes, and the rows come back in
// reverse order (with their "index"), so clients must restore the order.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/http_server.h"

namespace embedapt::testing {

// The vector the fake server returns for `text`.
inline std::vector<float> fake_vector(const std::string& text, int dim) {
  std::vector<float> v(dim);
  size_t h = std::hash<std::string>{}(text);
  for (int j = 0; j < dim; ++j) {
    h = h * 6364136223846793005ULL + 1442695040888963407ULL;
    v[j] = static_cast<float>((h >> 40) % 2001) / 1000.0f - 1.0f;
  }
  return v;
}

// Answers an embeddings request ({"model", "input": [...]}) with fake vectors.
inline HttpReply fake_embeddings_reply(const HttpExchange& request, int dim) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.contains("input") || !body["input"].is_array()) {
    return HttpReply::json(400, R"({"error":{"message":"input must be an array"}})");
  }
  const auto& input = body["input"];
  nlohmann::json data = nlohmann::json::array();
  for (size_t i = input.size(); i-- > 0;) {
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", fake_vector(input[i], dim)}});
  }
  nlohmann::json reply = {{"object", "list"}, {"data", data}, {"model", body.value("model", "")}};
  return HttpReply::json(200, reply.dump());
}

}  // namespace embedapt::testing
