// make_embedder: from a spec to an embedder, wrapped in the cache.
#include "embedapt/embedder.h"

#include <atomic>
#include <cstdio>

#include "core/common/http.h"
#include "core/embed/bert.h"
#include "core/embed/cache.h"
#include "core/embed/command.h"
#include "core/embed/openai.h"

namespace embedapt {

namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The cache to use, or null to run uncached. A cache another process holds
// (or one that cannot be opened) costs speed, not correctness: warn once.
std::shared_ptr<EmbeddingCache> open_cache(const EmbedderOptions& options) {
  if (!options.use_cache) return nullptr;
  std::shared_ptr<EmbeddingCache> cache;
  Status s = EmbeddingCache::open(resolve_cache_dir(options), &cache);
  if (s.ok()) return cache;
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    std::fprintf(stderr, "embedapt: warning: %s; running without the embedding cache\n", s.message().c_str());
  }
  return nullptr;
}

Status open_uncached(const std::string& spec, const EmbedderOptions& options, const EmbeddingCache* cache,
                     std::unique_ptr<Embedder>* out) {
  auto recorded_dim = [cache](const std::string& identity) {
    return cache != nullptr ? cache->recorded_dim(identity) : 0;
  };
  // The API options name the openai: embedder's requests; any other embedder
  // ignored them (--dimensions 5 gave 4-d vectors without a word).
  if (!starts_with(spec, "openai:") &&
      (options.dimensions != 0 || !options.api_base_url.empty() || !options.api_key.empty())) {
    return Status::InvalidArgument("embedder '" + spec +
                                   "': dimensions, the API base URL and key apply to openai:MODEL only");
  }
  if (spec == "default") {
    std::string dir;
    EMBEDAPT_RETURN_IF_ERROR(resolve_default_model_dir(options, &dir));
    return open_bert_embedder(dir, options, out);
  }
  if (starts_with(spec, "bert:")) return open_bert_embedder(spec.substr(5), options, out);
  if (starts_with(spec, "openai:")) {
    OpenAIOptions openai = openai_options(spec.substr(7), options);
    openai.known_dim = recorded_dim(openai_identity(openai));
    return open_openai_embedder(openai, out);
  }
  if (starts_with(spec, "command:")) {
    CommandOptions command;
    command.command = spec.substr(8);
    command.known_dim = recorded_dim(command_identity(command.command));
    command.show_progress = options.show_progress;
    command.read_timeout_seconds = options.command_timeout_seconds;
    return open_command_embedder(command, out);
  }
  return Status::InvalidArgument("embedder spec '" + spec +
                                 "' is not one of: default, bert:DIR, openai:MODEL, command:CMD");
}

}  // namespace

Status set_request_timeout(double seconds, EmbedderOptions* options) {
  const std::string problem = timeout_problem(seconds);
  if (!problem.empty()) return Status::InvalidArgument(problem);
  options->command_timeout_seconds = seconds;
  options->openai_timeout_seconds = seconds;
  return Status::OK();
}

Status make_embedder(const std::string& spec, const EmbedderOptions& options,
                     std::unique_ptr<Embedder>* out) {
  std::shared_ptr<EmbeddingCache> cache = open_cache(options);
  std::unique_ptr<Embedder> embedder;
  EMBEDAPT_RETURN_IF_ERROR(open_uncached(spec, options, cache.get(), &embedder));
  *out = cache != nullptr ? make_cached_embedder(std::move(cache), std::move(embedder)) : std::move(embedder);
  return Status::OK();
}

}  // namespace embedapt
