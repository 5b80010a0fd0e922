#include "core/eval/evaluator.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "core/common/progress.h"

namespace embedapt {

namespace {

// Queries whose relevant documents are all absent from the store.
Status find_unanswerable(const Store& store, const QaDataset& dataset, std::vector<std::string>* out) {
  std::unordered_map<std::string, bool> stored;  // doc id -> present
  Record record;
  for (const Relevance& r : dataset.relevant_docs) {
    bool any = false;
    for (const std::string& doc : r.doc_ids) {
      auto it = stored.find(doc);
      if (it == stored.end()) {
        Status s = store.get(doc, &record);
        if (!s.ok() && s.code() != Code::kNotFound) return s;
        it = stored.emplace(doc, s.ok()).first;
      }
      any = any || it->second;
    }
    if (!any) out->push_back(r.query_id);
  }
  return Status::OK();
}

Status embed_queries(Embedder& embedder, const QaDataset& dataset, const EvalOptions& options,
                     std::vector<float>* out) {
  const size_t batch_size = options.batch_size;
  Progress progress("embedding queries", dataset.queries.size(), options.show_progress);
  std::vector<std::string> batch;
  for (size_t start = 0; start < dataset.queries.size(); start += batch_size) {
    const size_t end = std::min(dataset.queries.size(), start + batch_size);
    batch.clear();
    for (size_t i = start; i < end; ++i) batch.push_back(dataset.queries[i].text);
    EMBEDAPT_RETURN_IF_ERROR(embedder.embed(batch, EmbedSide::kQuery, out).WithContext("embedding queries"));
    progress.add(batch.size());
  }
  return Status::OK();
}

double mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

std::vector<double> column(const SystemResult& result, double RankMetrics::*metric) {
  std::vector<double> values;
  values.reserve(result.queries.size());
  for (const QueryScore& q : result.queries) values.push_back(q.metrics.*metric);
  return values;
}

// Searches every query through `view` and scores the rankings.
Status score_system(const SearchView& view, const std::vector<float>& query_vectors, int dim,
                    const QaDataset& dataset,
                    const std::unordered_map<std::string, std::unordered_set<std::string>>& relevant,
                    const EvalOptions& options, SystemResult* result) {
  Progress progress("searching (" + result->name + ")", dataset.queries.size(), options.show_progress);
  const int depth = std::max(options.top_k, kCurveDepth);
  const size_t n = dataset.queries.size();
  std::vector<std::vector<Hit>> hits;
  SearchOptions search(depth);
  search.filter = options.filter;
  search.ef_search = options.ef_search;
  search.nprobe = options.nprobe;
  for (size_t start = 0; start < n; start += options.batch_size) {
    const size_t count = std::min(n - start, options.batch_size);
    hits.clear();
    EMBEDAPT_RETURN_IF_ERROR(
        view.search(query_vectors.data() + start * static_cast<size_t>(dim), count, search, &hits));
    if (hits.size() != count) {
      return Status::Internal("search returned " + std::to_string(hits.size()) + " result lists for " +
                              std::to_string(count) + " queries");
    }
    for (size_t i = 0; i < count; ++i) {
      const TextEntry& query = dataset.queries[start + i];
      const std::unordered_set<std::string>& wanted = relevant.at(query.id);
      QueryScore score{query.id, {}, {}, 0};
      std::vector<bool> is_relevant;
      for (const Hit& hit : hits[i]) {
        score.retrieved.push_back(hit.id);
        is_relevant.push_back(wanted.count(hit.id) > 0);
        if (is_relevant.back() && score.first_relevant == 0) score.first_relevant = int(is_relevant.size());
      }
      score.metrics = score_ranking(is_relevant, wanted.size(), options.top_k);
      result->queries.push_back(std::move(score));
    }
    progress.add(count);
  }
  result->hit_rate = mean(column(*result, &RankMetrics::hit));
  result->mrr = mean(column(*result, &RankMetrics::mrr));
  result->ndcg_at_10 = mean(column(*result, &RankMetrics::ndcg_at_10));
  result->recall_at_k = mean(column(*result, &RankMetrics::recall_at_k));
  result->recall_at_10 = mean(column(*result, &RankMetrics::recall_at_10));
  EMBEDAPT_RETURN_IF_ERROR(bootstrap_mean_ci(column(*result, &RankMetrics::hit), options.seed,
                                             options.resamples, 0.95, &result->hit_rate_ci95));
  return bootstrap_mean_ci(column(*result, &RankMetrics::mrr), options.seed, options.resamples, 0.95,
                           &result->mrr_ci95);
}

Status compare(const SystemResult& a, const SystemResult& base, const char* metric_name,
               double RankMetrics::*metric, const EvalOptions& options, Comparison* out) {
  const std::vector<double> a_values = column(a, metric), base_values = column(base, metric);
  out->a = a.name;
  out->b = base.name;
  out->metric = metric_name;
  out->delta = mean(a_values) - mean(base_values);
  return paired_permutation_p(a_values, base_values, options.seed, options.resamples, &out->p_value);
}

}  // namespace

Status evaluate(const Store& store, Embedder& embedder, const QaDataset& dataset,
                const std::vector<EvalSystem>& adapters, const EvalOptions& options, EvalReport* report) {
  if (options.top_k < 1) return Status::InvalidArgument("evaluate: top_k must be at least 1");
  if (options.batch_size < 1) return Status::InvalidArgument("evaluate: batch_size must be at least 1");
  for (const EvalSystem& system : adapters) {
    if (system.adapter == nullptr) {
      return Status::InvalidArgument("evaluate: adapter \"" + system.name +
                                     "\" is null (the base is always scored)");
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(validate_dataset(dataset, "evaluate"));
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));
  if (!stats.embedder.empty() && stats.embedder != embedder.identity()) {
    return Status::FailedPrecondition("the store holds vectors from embedder \"" + stats.embedder +
                                      "\", not \"" + embedder.identity() + "\"");
  }
  if (stats.dim != embedder.dim()) {
    return Status::FailedPrecondition("the store holds " + std::to_string(stats.dim) +
                                      "-d vectors but the embedder makes " + std::to_string(embedder.dim()) +
                                      "-d ones");
  }

  EvalReport out;
  EMBEDAPT_RETURN_IF_ERROR(find_unanswerable(store, dataset, &out.unanswerable_queries));
  std::unordered_map<std::string, std::unordered_set<std::string>> relevant;
  for (const Relevance& r : dataset.relevant_docs)
    relevant[r.query_id].insert(r.doc_ids.begin(), r.doc_ids.end());

  std::vector<float> query_vectors;
  EMBEDAPT_RETURN_IF_ERROR(embed_queries(embedder, dataset, options, &query_vectors));
  if (query_vectors.size() != dataset.queries.size() * static_cast<size_t>(stats.dim)) {
    return Status::Internal("the embedder returned " + std::to_string(query_vectors.size()) + " floats for " +
                            std::to_string(dataset.queries.size()) + " queries");
  }

  std::vector<EvalSystem> systems{{"base", "", nullptr}};
  systems.insert(systems.end(), adapters.begin(), adapters.end());
  for (const EvalSystem& system : systems) {
    std::unique_ptr<SearchView> view;
    Status made = options.views ? options.views(system.adapter, &view) : store.view(system.adapter, &view);
    EMBEDAPT_RETURN_IF_ERROR(made.WithContext("adapter " + system.name));
    SystemResult result;
    result.name = system.name;
    result.source = system.source;
    result.top_k = options.top_k;
    EMBEDAPT_RETURN_IF_ERROR(
        score_system(*view, query_vectors, stats.dim, dataset, relevant, options, &result)
            .WithContext(system.name));
    out.results.push_back(std::move(result));
  }
  for (size_t i = 1; i < out.results.size(); ++i) {
    Comparison hit, mrr;
    EMBEDAPT_RETURN_IF_ERROR(
        compare(out.results[i], out.results[0], "hit_rate", &RankMetrics::hit, options, &hit));
    EMBEDAPT_RETURN_IF_ERROR(
        compare(out.results[i], out.results[0], "mrr", &RankMetrics::mrr, options, &mrr));
    out.comparisons.push_back(hit);
    out.comparisons.push_back(mrr);
  }
  *report = std::move(out);
  return Status::OK();
}

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

Status load_eval_system(const Store& store, const std::string& spec, const std::string& embedder_identity,
                        bool trust_code, EvalSystem* out) {
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));
  std::string config_json, weights, name;
  if (spec == "active" || all_digits(spec)) {
    uint64_t version = 0;
    if (spec == "active") {
      if (stats.active_adapter == 0) return Status::FailedPrecondition("the store has no active adapter");
      version = stats.active_adapter;
    } else {
      // from_chars, not stoull: a number past 2^64 names no version; it must not throw.
      auto [end, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), version);
      if (ec != std::errc() || end != spec.data() + spec.size()) {
        return Status::NotFound("no adapter version " + spec + " (too large)");
      }
    }
    AdapterVersion stored;
    EMBEDAPT_RETURN_IF_ERROR(store.get_adapter(version, &stored));
    config_json = stored.config_json;
    weights = stored.weights;
    name = "v" + std::to_string(version) + (spec == "active" ? " (active)" : "");
  } else {
    EMBEDAPT_RETURN_IF_ERROR(read_adapter_dir(spec, &config_json, &weights));
    name = std::filesystem::path(spec).lexically_normal().filename().string();
    if (name.empty()) name = spec;
  }
  AdapterConfig config;
  EMBEDAPT_RETURN_IF_ERROR(parse_adapter_config(config_json, &config));
  EMBEDAPT_RETURN_IF_ERROR(check_adapter_fits(config, stats.dim, embedder_identity));
  // The kind leads the name, unless the name already is the kind (a directory named "linear").
  if (config.kind != name) name = config.kind + " " + name;
  AdapterLoadOptions load_options;
  load_options.trust_code = trust_code;
  std::unique_ptr<Adapter> adapter;
  EMBEDAPT_RETURN_IF_ERROR(load_adapter(config_json, weights, load_options, &adapter));
  *out = {name, spec, std::shared_ptr<const Adapter>(std::move(adapter))};
  return Status::OK();
}

}  // namespace embedapt
