// Reading a sentence-transformers model directory into a BertModel and a
// tokenizer, and the Embedder that runs them.
#include "core/embed/bert.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/adapt/compute_threads.h"
#include "core/common/files.h"
#include "core/common/safetensors.h"
#include "core/common/sha256.h"
#include "core/embed/bert_model.h"

namespace embedapt {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultModel[] = "all-MiniLM-L6-v2";

// The path of the model folder's file `name`, as messages name it.
std::string in_dir(const std::string& dir, const std::string& name) { return dir + "/" + name; }

// Reads `dir/name` as JSON. A missing optional file yields an empty object.
Status read_json(const std::string& dir, const std::string& name, bool required, nlohmann::json* out) {
  std::string path = in_dir(dir, name), text;
  if (!required && !fs::exists(path)) {
    *out = nlohmann::json::object();
    return Status::OK();
  }
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, &text));
  *out = nlohmann::json::parse(text, nullptr, false);
  if (out->is_discarded()) return Status::Corruption(path + ": not valid JSON");
  return Status::OK();
}

// A JSON value of the expected type, or `fallback` when absent or null.
template <typename T>
Status json_field(const nlohmann::json& object, const char* key, const std::string& path, T fallback,
                  T* out) {
  *out = fallback;
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return Status::OK();
  try {
    *out = object[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    return Status::Corruption(path + ": '" + key + "' has the wrong type");
  }
  return Status::OK();
}

// What sentence-transformers wraps around the transformer: the pooling and
// normalisation modules, the sequence limit and the prompts.
struct SentenceConfig {
  SentencePooling pooling;
  bool include_prompt = true;
  int64_t max_seq_length = 0;  // 0: the model's limit
  std::string query_prompt, document_prompt;
};

Status read_sentence_config(const std::string& dir, SentenceConfig* config) {
  nlohmann::json modules, sbert, st_config;
  EMBEDAPT_RETURN_IF_ERROR(read_json(dir, "modules.json", false, &modules));
  EMBEDAPT_RETURN_IF_ERROR(read_json(dir, "sentence_bert_config.json", false, &sbert));
  EMBEDAPT_RETURN_IF_ERROR(read_json(dir, "config_sentence_transformers.json", false, &st_config));

  // Without modules.json, sentence-transformers mean-pools a plain transformer.
  if (!modules.is_array() && !modules.empty())
    return Status::Corruption(in_dir(dir, "modules.json") + ": not a list");
  for (const auto& module : modules) {
    std::string type = module.value("type", ""), path = module.value("path", "");
    if (type == "sentence_transformers.models.Transformer") continue;
    if (type == "sentence_transformers.models.Normalize") {
      config->pooling.normalize = true;
    } else if (type == "sentence_transformers.models.Pooling") {
      nlohmann::json pooling;
      std::string name = path + "/config.json";
      EMBEDAPT_RETURN_IF_ERROR(read_json(dir, name, true, &pooling));
      bool cls = pooling.value("pooling_mode_cls_token", false);
      bool mean = pooling.value("pooling_mode_mean_tokens", false);
      for (const char* other : {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"}) {
        if (pooling.value(other, false)) return Status::NotSupported(in_dir(dir, name) + ": " + other);
      }
      if (cls == mean) {
        return Status::NotSupported(in_dir(dir, name) + ": exactly one of CLS and mean pooling must be set");
      }
      config->pooling.mode = cls ? SentencePooling::Mode::kCls : SentencePooling::Mode::kMean;
      config->include_prompt = pooling.value("include_prompt", true);
    } else {
      return Status::NotSupported(in_dir(dir, "modules.json") + ": module type '" + type + "'");
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(json_field(sbert, "max_seq_length", in_dir(dir, "sentence_bert_config.json"),
                                      int64_t{0}, &config->max_seq_length));

  // sentence-transformers' encode_query uses the "query" prompt, and
  // encode_document the first of "document", "passage", "corpus".
  const std::string st_path = in_dir(dir, "config_sentence_transformers.json");
  nlohmann::json prompts = st_config.value("prompts", nlohmann::json::object());
  EMBEDAPT_RETURN_IF_ERROR(json_field(prompts, "query", st_path, std::string(), &config->query_prompt));
  for (const char* name : {"document", "passage", "corpus"}) {
    if (prompts.is_object() && prompts.contains(name)) {
      EMBEDAPT_RETURN_IF_ERROR(json_field(prompts, name, st_path, std::string(), &config->document_prompt));
      break;
    }
  }
  return Status::OK();
}

class BertEmbedder : public Embedder {
 public:
  BertEmbedder(std::unique_ptr<BertModel> model, std::unique_ptr<WordPieceTokenizer> tokenizer,
               SentenceConfig config, size_t max_length, int threads, std::string identity)
      : model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        config_(std::move(config)),
        max_length_(max_length),
        threads_(threads),
        identity_(std::move(identity)) {}

  int dim() const override { return model_->hidden_size(); }
  const std::string& identity() const override { return identity_; }

  // Safe to call concurrently: the model's weights are read-only.
  Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) override {
    const std::string& prompt = side == EmbedSide::kQuery ? config_.query_prompt : config_.document_prompt;
    SentencePooling pooling = config_.pooling;
    if (!config_.include_prompt && !prompt.empty())
      pooling.skip_tokens = 1 + tokenizer_->count_tokens(prompt);

    std::vector<std::vector<int32_t>> sequences(texts.size());
    for (size_t i = 0; i < texts.size(); ++i)
      sequences[i] = tokenizer_->encode(prompt + texts[i], max_length_);

    const size_t base = out->size();
    out->resize(base + texts.size() * static_cast<size_t>(model_->hidden_size()));
    ComputeThreads compute_threads(threads_);
    Status s;
    try {
      s = model_->embed(sequences, pooling, out->data() + base);
    } catch (const std::exception& e) {  // torch reports allocation and kernel failures by throwing
      s = Status::Internal(std::string("BERT forward pass failed: ") + e.what());
    }
    if (!s.ok()) {
      out->resize(base);
      return s.WithContext(identity_);
    }
    return Status::OK();
  }

 private:
  std::unique_ptr<BertModel> model_;
  std::unique_ptr<WordPieceTokenizer> tokenizer_;
  SentenceConfig config_;
  size_t max_length_;
  int threads_;
  std::string identity_;
};

bool has_model(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "model.safetensors", ec);
}

fs::path executable_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// The source tree, from this file's path (the build compiles it by absolute
// path): lets binaries run from any build directory find models/.
fs::path source_root() { return fs::path(__FILE__).parent_path().parent_path().parent_path(); }

}  // namespace

Status resolve_default_model_dir(const EmbedderOptions& options, std::string* dir) {
  std::vector<fs::path> candidates;
  auto add_models_dir = [&](const fs::path& models) {
    candidates.push_back(models);
    candidates.push_back(models / kDefaultModel);
  };
  if (!options.models_dir.empty()) add_models_dir(options.models_dir);
  if (const char* env = std::getenv("EMBEDAPT_MODELS_DIR"); env && *env) add_models_dir(env);
  fs::path exe = executable_dir();
  if (!exe.empty()) {
    candidates.push_back(exe / ".." / ".." / "models" / kDefaultModel);
    candidates.push_back(exe / ".." / "share" / "embedapt" / "models" / kDefaultModel);
  }
  candidates.push_back(source_root() / "models" / kDefaultModel);

  std::string tried;
  for (const fs::path& candidate : candidates) {
    if (has_model(candidate)) {
      *dir = candidate.lexically_normal().string();
      return Status::OK();
    }
    tried += (tried.empty() ? "" : ", ") + candidate.lexically_normal().string();
  }
  return Status::NotFound(std::string("the default model ") + kDefaultModel + " is not in any of: " + tried +
                          " (run `make models`, or set EMBEDAPT_MODELS_DIR)");
}

Status load_model_tokenizer(const std::string& model_dir, std::unique_ptr<WordPieceTokenizer>* out) {
  nlohmann::json config;
  EMBEDAPT_RETURN_IF_ERROR(read_json(model_dir, "tokenizer_config.json", false, &config));
  const std::string path = model_dir + "/tokenizer_config.json";
  WordPieceTokenizer::Options options;
  bool strip_follows_case = true;
  EMBEDAPT_RETURN_IF_ERROR(json_field(config, "do_lower_case", path, true, &options.lower_case));
  EMBEDAPT_RETURN_IF_ERROR(
      json_field(config, "tokenize_chinese_chars", path, true, &options.tokenize_chinese_chars));
  if (config.is_object() && config.contains("strip_accents") && !config["strip_accents"].is_null()) {
    EMBEDAPT_RETURN_IF_ERROR(json_field(config, "strip_accents", path, true, &options.strip_accents));
    strip_follows_case = false;
  }
  if (strip_follows_case) options.strip_accents = options.lower_case;  // BERT's rule when unset
  return WordPieceTokenizer::load(model_dir + "/vocab.txt", options, out);
}

Status open_bert_embedder(const std::string& model_dir, const EmbedderOptions& options,
                          std::unique_ptr<Embedder>* out) {
  if (!fs::is_directory(model_dir)) return Status::NotFound(model_dir + ": no such model directory");
  std::string config_json, weights_bytes, vocab_bytes, tokenizer_config;
  EMBEDAPT_RETURN_IF_ERROR(read_file(model_dir + "/config.json", &config_json));
  EMBEDAPT_RETURN_IF_ERROR(read_file(model_dir + "/model.safetensors", &weights_bytes));
  EMBEDAPT_RETURN_IF_ERROR(read_file(model_dir + "/vocab.txt", &vocab_bytes));

  std::unique_ptr<WordPieceTokenizer> tokenizer;
  EMBEDAPT_RETURN_IF_ERROR(load_model_tokenizer(model_dir, &tokenizer));
  SentenceConfig sentence;
  EMBEDAPT_RETURN_IF_ERROR(read_sentence_config(model_dir, &sentence));

  std::unique_ptr<BertModel> model;
  {
    TensorMap tensors;
    Status s = parse_safetensors(weights_bytes, &tensors);
    if (!s.ok()) return s.WithContext(model_dir + "/model.safetensors");
    try {
      EMBEDAPT_RETURN_IF_ERROR(BertModel::load(config_json, tensors, model_dir, &model));
    } catch (const std::exception& e) {
      return Status::Internal(model_dir + ": loading the weights into torch failed: " + e.what());
    }
  }
  size_t max_length = model->max_positions();
  if (sentence.max_seq_length > 0)
    max_length = std::min(max_length, static_cast<size_t>(sentence.max_seq_length));
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::thread::hardware_concurrency());

  // The identity hashes every input of the vectors: weights, architecture,
  // vocabulary, casing, pooling, normalisation, prompts and length limit.
  if (fs::exists(model_dir + "/tokenizer_config.json")) {
    EMBEDAPT_RETURN_IF_ERROR(read_file(model_dir + "/tokenizer_config.json", &tokenizer_config));
  }
  Sha256 hash;
  for (std::string_view part :
       {std::string_view(config_json), std::string_view(weights_bytes), std::string_view(vocab_bytes),
        std::string_view(tokenizer_config), std::string_view(sentence.query_prompt),
        std::string_view(sentence.document_prompt)}) {
    uint64_t size = part.size();  // length-prefixed, so ("ab", "c") and ("a", "bc") differ
    hash.add({reinterpret_cast<const char*>(&size), sizeof size}).add(part);
  }
  std::string identity = "bert:" + fs::path(model_dir).lexically_normal().filename().string();
  if (identity == "bert:")
    identity += fs::path(model_dir).lexically_normal().parent_path().filename().string();
  identity += "@" + hex(hash.digest()).substr(0, 16);
  identity += sentence.pooling.mode == SentencePooling::Mode::kCls ? ";pool=cls" : ";pool=mean";
  identity += sentence.pooling.normalize ? ";norm=l2" : ";norm=none";
  identity += ";max=" + std::to_string(max_length);
  if (!sentence.query_prompt.empty() || !sentence.document_prompt.empty()) {
    identity += sentence.include_prompt ? ";prompts" : ";prompts-excluded";
  }
  out->reset(new BertEmbedder(std::move(model), std::move(tokenizer), std::move(sentence), max_length,
                              threads, std::move(identity)));
  return Status::OK();
}

}  // namespace embedapt
