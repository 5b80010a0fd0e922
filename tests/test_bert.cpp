// The C++ BERT encoder against sentence-transformers: the golden fixture's
// vectors (made by tools/golden/make_golden.sh) must be matched with cosine
// >= 0.999 for every text on both sides, and the identity must follow every
// setting that changes the vectors.
#include <ATen/Parallel.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "core/common/files.h"
#include "core/common/npy.h"
#include "core/embed/bert.h"
#include "tests/support/catch.h"

namespace embedapt {
namespace {

namespace fs = std::filesystem;

const std::string kGoldenDir = EMBEDAPT_SOURCE_DIR "/tests/data/golden";

std::string model_dir() {
  std::string dir;
  Status s = resolve_default_model_dir({}, &dir);
  if (!s.ok()) FAIL(s.ToString());
  return dir;
}

std::unique_ptr<Embedder> open_model(const std::string& dir) {
  EmbedderOptions options;
  std::unique_ptr<Embedder> embedder;
  Status s = open_bert_embedder(dir, options, &embedder);
  if (!s.ok()) FAIL(s.ToString());
  return embedder;
}

std::vector<float> embed(Embedder& e, const std::vector<std::string>& texts, EmbedSide side) {
  std::vector<float> out;
  Status s = e.embed(texts, side, &out);
  if (!s.ok()) FAIL(s.ToString());
  REQUIRE(out.size() == texts.size() * e.dim());
  return out;
}

double cosine(const float* a, const float* b, size_t n) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) dot += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
  return dot / std::sqrt(na * nb);
}

// A copy of the default model directory (large files linked, not copied)
// with some files replaced.
std::string model_variant(const std::string& name, const std::map<std::string, std::string>& replaced) {
  fs::path dir = fs::temp_directory_path() / ("embedapt_test_bert_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir / "1_Pooling");
  fs::path source = model_dir();
  for (const auto& entry : fs::recursive_directory_iterator(source)) {
    if (!entry.is_regular_file()) continue;
    fs::path relative = fs::relative(entry.path(), source);
    if (!replaced.count(relative.string())) fs::create_symlink(entry.path(), dir / relative);
  }
  for (const auto& [file, content] : replaced)
    REQUIRE(write_file_atomic((dir / file).string(), content).ok());
  return dir.string();
}

TEST_CASE("bert matches sentence-transformers on every golden text, both sides") {
  std::string json;
  REQUIRE(read_file(kGoldenDir + "/golden.json", &json).ok());
  std::vector<std::string> texts;
  auto golden_texts = nlohmann::json::parse(json)["texts"];
  for (const auto& record : golden_texts) texts.push_back(record["text"]);

  auto embedder = open_model(model_dir());
  REQUIRE(embedder->dim() == 384);
  for (auto [side, file] :
       {std::pair{EmbedSide::kQuery, "query.npy"}, {EmbedSide::kDocument, "document.npy"}}) {
    Matrix golden;
    REQUIRE(read_npy(kGoldenDir + "/" + file, &golden).ok());
    REQUIRE(golden.rows == texts.size());
    REQUIRE(golden.cols == 384);
    std::vector<float> ours = embed(*embedder, texts, side);
    double worst = 1.0;
    for (size_t i = 0; i < texts.size(); ++i) {
      double c = cosine(ours.data() + i * 384, golden.row(i), 384);
      INFO(file << " text " << i << ": " << texts[i].substr(0, 60));
      CHECK(c >= 0.999);
      worst = std::min(worst, c);
    }
    WARN(file << ": worst cosine " << std::setprecision(9) << worst << " over " << texts.size() << " texts");
  }
}

TEST_CASE("bert vectors do not depend on the batch they are computed in") {
  auto embedder = open_model(model_dir());
  std::string text = "What was the net loss attributable to Uber in 2021?";
  std::vector<float> alone = embed(*embedder, {text}, EmbedSide::kDocument);
  std::vector<std::string> batch = {std::string(3000, 'x') + " long", "short", text, ""};
  for (int i = 0; i < 40; ++i) batch.push_back("filler text number " + std::to_string(i));
  std::vector<float> together = embed(*embedder, batch, EmbedSide::kDocument);
  float worst = 0, norm = 0;
  for (size_t d = 0; d < 384; ++d) {
    worst = std::max(worst, std::abs(alone[d] - together[size_t{2} * 384 + d]));
    norm += alone[d] * alone[d];
  }
  CHECK(worst < 1e-4f);
  CHECK(std::abs(norm - 1.0f) < 1e-4f);  // the model normalises

  std::vector<float> out = {1.0f};
  REQUIRE(embedder->embed({}, EmbedSide::kQuery, &out).ok());
  CHECK(out.size() == 1);  // appends nothing, keeps what was there
}

TEST_CASE("bert uses the thread count it was given and leaves the caller's setting alone") {
  EmbedderOptions one_thread;
  one_thread.threads = 1;
  std::unique_ptr<Embedder> single;
  REQUIRE(open_bert_embedder(model_dir(), one_thread, &single).ok());
  auto all = open_model(model_dir());
  std::vector<std::string> texts = {"Uber's gross bookings grew in 2021.",
                                    "How did Delivery revenue change?"};

  at::set_num_threads(3);
  auto a = embed(*single, texts, EmbedSide::kDocument);
  CHECK(at::get_num_threads() == 3);
  auto b = embed(*all, texts, EmbedSide::kDocument);
  CHECK(at::get_num_threads() == 3);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(std::abs(a[i] - b[i]) < 1e-5f);
}

TEST_CASE("bert identity changes with pooling, length, prompts and weights") {
  auto base = open_model(model_dir());
  CHECK(base->identity().rfind("bert:all-MiniLM-L6-v2@", 0) == 0);
  CHECK(open_model(model_dir())->identity() == base->identity());

  auto shorter = open_model(model_variant(
      "short", {{"sentence_bert_config.json", R"({"max_seq_length": 8, "do_lower_case": false})"}}));
  CHECK(shorter->identity() != base->identity());
  std::string long_text = "one two three four five six seven eight nine ten eleven twelve";
  CHECK(embed(*shorter, {long_text}, EmbedSide::kDocument) !=
        embed(*base, {long_text}, EmbedSide::kDocument));

  auto cls = open_model(model_variant(
      "cls",
      {{"1_Pooling/config.json", R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})"}}));
  CHECK(cls->identity() != base->identity());
  CHECK(cls->identity() != shorter->identity());

  auto renamed =
      open_model(model_variant("vocab", {{"vocab.txt", [] {
                                            std::string v;
                                            REQUIRE(read_file(model_dir() + "/vocab.txt", &v).ok());
                                            return v + "extra\n";
                                          }()}}));
  CHECK(renamed->identity().substr(renamed->identity().find('@')) !=
        base->identity().substr(base->identity().find('@')));
}

TEST_CASE("bert prepends the model's query and document prompts") {
  auto prompted = open_model(model_variant(
      "prompts",
      {{"config_sentence_transformers.json",
        R"({"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null})"}}));
  auto base = open_model(model_dir());
  CHECK(prompted->identity() != base->identity());
  std::string text = "how much did revenue grow";
  auto query = embed(*prompted, {text}, EmbedSide::kQuery);
  auto document = embed(*prompted, {text}, EmbedSide::kDocument);
  auto by_hand = embed(*base, {"query: " + text, "passage: " + text}, EmbedSide::kDocument);
  CHECK(cosine(query.data(), by_hand.data(), 384) > 0.99999);
  CHECK(cosine(document.data(), by_hand.data() + 384, 384) > 0.99999);
  CHECK(cosine(query.data(), document.data(), 384) < 0.9999);
}

TEST_CASE("bert refuses broken or unsupported model directories with a named reason") {
  std::unique_ptr<Embedder> e;
  Status missing = open_bert_embedder("/nonexistent/model", {}, &e);
  CHECK(missing.code() == Code::kNotFound);
  CHECK(missing.message().find("/nonexistent/model") != std::string::npos);

  Status truncated =
      open_bert_embedder(model_variant("truncated", {{"model.safetensors", "\x10\0\0\0"}}), {}, &e);
  CHECK(truncated.code() == Code::kCorruption);
  CHECK(truncated.message().find("model.safetensors") != std::string::npos);

  std::string config;
  REQUIRE(read_file(model_dir() + "/config.json", &config).ok());
  auto roberta = nlohmann::json::parse(config);
  roberta["model_type"] = "roberta";
  Status unsupported =
      open_bert_embedder(model_variant("roberta", {{"config.json", roberta.dump()}}), {}, &e);
  CHECK(unsupported.code() == Code::kNotSupported);
  CHECK(unsupported.message().find("roberta") != std::string::npos);

  auto smaller = nlohmann::json::parse(config);
  smaller["hidden_size"] = 192;
  Status misshapen =
      open_bert_embedder(model_variant("misshapen", {{"config.json", smaller.dump()}}), {}, &e);
  CHECK(misshapen.code() == Code::kCorruption);
  CHECK(misshapen.message().find("shape") != std::string::npos);

  Status dense = open_bert_embedder(
      model_variant("dense", {{"modules.json",
                               R"([{"path": "2_Dense", "type": "sentence_transformers.models.Dense"}])"}}),
      {}, &e);
  CHECK(dense.code() == Code::kNotSupported);
}

TEST_CASE("default model lookup honours models_dir and falls back to the build tree") {
  std::string dir;
  EmbedderOptions options;
  options.models_dir = fs::path(model_dir()).parent_path().string();
  REQUIRE(resolve_default_model_dir(options, &dir).ok());
  CHECK(fs::equivalent(dir, model_dir()));

  options.models_dir = "/nonexistent/models";
  REQUIRE(resolve_default_model_dir(options, &dir).ok());
  CHECK(fs::exists(fs::path(dir) / "model.safetensors"));

  std::unique_ptr<WordPieceTokenizer> tokenizer;
  REQUIRE(load_model_tokenizer(dir, &tokenizer).ok());
  CHECK(tokenizer->count_tokens("Hello, world!") == 4);
}

}  // namespace
}  // namespace embedapt
