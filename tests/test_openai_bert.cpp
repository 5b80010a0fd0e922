// A real model behind a real HTTP server: the test server serves the default
// model (the C++ BERT encoder) over the OpenAI embeddings API, and the
// openai: embedder's vectors must equal the local encoder's.
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/embed/bert.h"
#include "embedapt/embedder.h"
#include "tests/support/catch.h"
#include "tests/support/http_server.h"

using embedapt::Embedder;
using embedapt::EmbedderOptions;
using embedapt::EmbedSide;
using embedapt::Status;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpReply;
using embedapt::testing::HttpTestServer;

TEST_CASE("openai embedder against the default model served on loopback", "[openai][bert]") {
  std::string model_dir;
  Status found = embedapt::resolve_default_model_dir(EmbedderOptions{}, &model_dir);
  if (!found.ok()) {
    WARN("skipped: no default model (" << found.message() << ")");
    return;
  }
  EmbedderOptions local_options;
  local_options.threads = 2;
  std::unique_ptr<Embedder> local;
  REQUIRE(embedapt::open_bert_embedder(model_dir, local_options, &local).ok());

  std::mutex mu;  // the encoder takes one embed() at a time
  HttpTestServer server([&](const HttpExchange& request) {
    nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
    if (!body.is_object() || body.value("model", "") != "all-MiniLM-L6-v2") {
      return HttpReply::json(404, R"({"error":{"message":"unknown model"}})");
    }
    std::vector<std::string> texts = body["input"].get<std::vector<std::string>>();
    std::vector<float> rows;
    {
      std::lock_guard<std::mutex> lock(mu);
      Status s = local->embed(texts, EmbedSide::kDocument, &rows);
      if (!s.ok()) return HttpReply::json(500, nlohmann::json{{"error", s.message()}}.dump());
    }
    const size_t dim = static_cast<size_t>(local->dim());
    nlohmann::json data = nlohmann::json::array();
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<float> row(rows.begin() + i * dim, rows.begin() + (i + 1) * dim);
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", row}});
    }
    return HttpReply::json(200, nlohmann::json{{"object", "list"}, {"data", data}}.dump());
  });

  EmbedderOptions options;
  options.api_base_url = server.base_url() + "/v1";
  options.use_cache = false;
  std::unique_ptr<Embedder> remote;
  REQUIRE(embedapt::make_embedder("openai:all-MiniLM-L6-v2", options, &remote).ok());
  REQUIRE(remote->dim() == local->dim());
  CHECK(remote->dim() == 384);

  std::vector<std::string> texts = {
      "What was Uber's total revenue in 2021?",
      "Lyft's riders and drivers are independent contractors.",
      "Café crème, naïve façade: accents everywhere.",
      "北京是中国的首都。",
      "Punctuation!!! (lots) of it; really?",
  };
  for (int i = 0; i < 70; ++i)
    texts.push_back("filler sentence number " + std::to_string(i) + " about risk factors");
  std::vector<float> expected;
  std::vector<float> got;
  REQUIRE(local->embed(texts, EmbedSide::kDocument, &expected).ok());
  REQUIRE(remote->embed(texts, EmbedSide::kDocument, &got).ok());
  REQUIRE(got.size() == expected.size());
  const size_t dim = static_cast<size_t>(local->dim());
  for (size_t i = 0; i < texts.size(); ++i) {
    double dot = 0, a = 0, b = 0;
    for (size_t j = 0; j < dim; ++j) {
      dot += got[i * dim + j] * expected[i * dim + j];
      a += got[i * dim + j] * got[i * dim + j];
      b += expected[i * dim + j] * expected[i * dim + j];
    }
    INFO("text " << i << ": " << texts[i]);
    CHECK(dot / std::sqrt(a * b) > 0.99999);
  }
  CHECK(server.requests() == 1 + 2);  // the probe, then 75 texts in batches of 64
}
