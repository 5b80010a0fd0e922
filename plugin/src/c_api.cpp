// The C ABI (embedapt/embedapt.h) over embedapt::Store and embedapt::retrain.
//
// Every entry point runs its body inside guarded() (or catches by hand when it
// returns a value rather than a code): no C++ exception reaches a C caller.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "embedapt/embedapt.h"
#include "embedapt/learn.h"
#include "embedapt/store.h"

struct embedapt_store {
  std::unique_ptr<embedapt::Store> store;
  int dim = 0;
  bool trust_code = false;  // opened with EMBEDAPT_OPEN_TRUST_CODE
};

struct embedapt_results {
  std::vector<embedapt::Hit> hits;
};

struct embedapt_adapters {
  std::vector<embedapt::AdapterVersion> versions;
  uint64_t active = 0;
};

namespace {

char* copy_bytes(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// The codes are declared in the same order as embedapt::Code.
embedapt_code report(const embedapt::Status& s, char** error) {
  if (!s.ok() && error != nullptr) *error = copy_bytes(s.message());
  return static_cast<embedapt_code>(s.code());
}

embedapt_code invalid(const char* message, char** error) {
  return report(embedapt::Status::InvalidArgument(message), error);
}

// Allocates nothing through C++ (it runs when C++ allocation may have failed).
embedapt_code internal_error(const char* function, const char* what, char** error) noexcept {
  if (error != nullptr) {
    const size_t n = std::strlen(function) + std::strlen(what) + 32;
    *error = static_cast<char*>(std::malloc(n));
    if (*error != nullptr) std::snprintf(*error, n, "%s: unexpected exception: %s", function, what);
  }
  return EMBEDAPT_INTERNAL;
}

// Runs `body` (which returns an embedapt_code), turning any exception into
// EMBEDAPT_INTERNAL with its message.
template <typename Body>
embedapt_code guarded(const char* function, char** error, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    return internal_error(function, e.what(), error);
  } catch (...) {
    return internal_error(function, "not a std::exception", error);
  }
}

embedapt_code parse_filter(const char* json, embedapt::Filter* out, char** error) {
  if (json == nullptr) return EMBEDAPT_OK;
  return report(embedapt::Filter::parse(json, out), error);
}

}  // namespace

extern "C" {

embedapt_code embedapt_open(const char* path, int dim, const char* metric, const char* index_spec,
                            embedapt_store** store, char** error) {
  return embedapt_open_flags(path, dim, metric, index_spec, 0, store, error);
}

embedapt_code embedapt_open_flags(const char* path, int dim, const char* metric, const char* index_spec,
                                  uint32_t flags, embedapt_store** store, char** error) {
  return guarded("embedapt_open", error, [&] {
    if (path == nullptr || store == nullptr)
      return invalid("embedapt_open: path and store must not be NULL", error);
    if ((flags & ~EMBEDAPT_OPEN_TRUST_CODE) != 0) return invalid("embedapt_open_flags: unknown flags", error);
    embedapt::Options options;
    options.dim = dim;
    options.trust_code = (flags & EMBEDAPT_OPEN_TRUST_CODE) != 0;
    if (metric != nullptr) {
      embedapt::Status s = embedapt::ParseMetric(metric, &options.metric);
      if (!s.ok()) return report(s, error);
    }
    if (index_spec != nullptr) options.index_spec = index_spec;
    auto handle = std::make_unique<embedapt_store>();
    handle->trust_code = options.trust_code;
    embedapt::Status s = embedapt::Store::open(path, options, &handle->store);
    if (!s.ok()) return report(s, error);
    embedapt::StoreStats stats;
    s = handle->store->stats(&stats);
    if (!s.ok()) return report(s, error);
    handle->dim = stats.dim;
    *store = handle.release();
    return EMBEDAPT_OK;
  });
}

void embedapt_close(embedapt_store* store) {
  try {
    delete store;
  } catch (...) {  // a destructor that throws: nothing to report it to
  }
}

int embedapt_dim(const embedapt_store* store) { return store == nullptr ? 0 : store->dim; }

uint64_t embedapt_count(const embedapt_store* store) {
  try {
    embedapt::StoreStats stats;
    return store != nullptr && store->store->stats(&stats).ok() ? stats.count : 0;
  } catch (...) {
    return 0;
  }
}

embedapt_code embedapt_upsert(embedapt_store* store, const char* id, const float* vector, size_t dim,
                              const void* payload, size_t payload_len, char** error) {
  return guarded("embedapt_upsert", error, [&] {
    if (store == nullptr || id == nullptr)
      return invalid("embedapt_upsert: store and id must not be NULL", error);
    if (payload == nullptr && payload_len != 0) return invalid("embedapt_upsert: NULL payload", error);
    std::string_view bytes(static_cast<const char*>(payload), payload == nullptr ? 0 : payload_len);
    return report(store->store->upsert(id, vector, dim, bytes), error);
  });
}

embedapt_code embedapt_upsert_metadata(embedapt_store* store, const char* id, const float* vector, size_t dim,
                                       const void* payload, size_t payload_len, const char* metadata,
                                       char** error) {
  return guarded("embedapt_upsert_metadata", error, [&] {
    if (store == nullptr || id == nullptr || vector == nullptr) {
      return invalid("embedapt_upsert_metadata: store, id and vector must not be NULL", error);
    }
    if (payload == nullptr && payload_len != 0)
      return invalid("embedapt_upsert_metadata: NULL payload", error);
    // Before the `dim` floats are copied: a wrong, huge dim read past the
    // caller's vector (a segfault) or could not be allocated.
    if (dim != static_cast<size_t>(store->dim)) {
      const std::string message = "embedapt_upsert_metadata: vector has dimension " + std::to_string(dim) +
                                  ", the store's is " + std::to_string(store->dim);
      return invalid(message.c_str(), error);
    }
    std::vector<embedapt::Record> records(1);
    records[0].id = id;
    records[0].vector.assign(vector, vector + dim);
    records[0].payload.assign(static_cast<const char*>(payload), payload == nullptr ? 0 : payload_len);
    if (metadata != nullptr) records[0].metadata = metadata;
    return report(store->store->upsert_batch(records), error);
  });
}

embedapt_code embedapt_remove_matching(embedapt_store* store, const char* filter, uint64_t* removed,
                                       char** error) {
  return guarded("embedapt_remove_matching", error, [&] {
    if (store == nullptr || filter == nullptr) {
      return invalid("embedapt_remove_matching: store and filter must not be NULL", error);
    }
    embedapt::Filter parsed;
    if (embedapt_code code = parse_filter(filter, &parsed, error)) return code;
    return report(store->store->remove_matching(parsed, removed), error);
  });
}

embedapt_code embedapt_get_metadata(const embedapt_store* store, const char* id, char** metadata,
                                    char** error) {
  return guarded("embedapt_get_metadata", error, [&] {
    if (store == nullptr || id == nullptr || metadata == nullptr) {
      return invalid("embedapt_get_metadata: store, id and metadata must not be NULL", error);
    }
    embedapt::Record record;
    embedapt::Status s = store->store->get(id, &record);
    if (!s.ok()) return report(s, error);
    *metadata = copy_bytes(record.metadata);
    return *metadata ? EMBEDAPT_OK
                     : report(embedapt::Status::Internal("embedapt_get_metadata: out of memory"), error);
  });
}

embedapt_code embedapt_remove(embedapt_store* store, const char* id, char** error) {
  return guarded("embedapt_remove", error, [&] {
    if (store == nullptr || id == nullptr)
      return invalid("embedapt_remove: store and id must not be NULL", error);
    return report(store->store->remove(id), error);
  });
}

embedapt_code embedapt_get(const embedapt_store* store, const char* id, float* vector, size_t dim,
                           void** payload, size_t* payload_len, char** error) {
  return guarded("embedapt_get", error, [&] {
    if (store == nullptr || id == nullptr || vector == nullptr)
      return invalid("embedapt_get: store, id and vector must not be NULL", error);
    if (dim != size_t(store->dim)) return invalid("embedapt_get: dim differs from the store's", error);
    embedapt::Record record;
    embedapt::Status s = store->store->get(id, &record);
    if (!s.ok()) return report(s, error);
    std::memcpy(vector, record.vector.data(), dim * sizeof(float));
    if (payload != nullptr) {
      *payload = copy_bytes(record.payload);
      if (payload_len != nullptr) *payload_len = record.payload.size();
    }
    return EMBEDAPT_OK;
  });
}

embedapt_code embedapt_flush(embedapt_store* store, char** error) {
  return guarded("embedapt_flush", error, [&] {
    if (store == nullptr) return invalid("embedapt_flush: store must not be NULL", error);
    return report(store->store->flush(), error);
  });
}

embedapt_code embedapt_search(const embedapt_store* store, const float* query, size_t dim, int k,
                              embedapt_results** results, char** error) {
  return guarded("embedapt_search", error, [&] {
    if (store == nullptr || results == nullptr)
      return invalid("embedapt_search: store and results must not be NULL", error);
    auto out = std::make_unique<embedapt_results>();
    embedapt::Status s = store->store->search(query, dim, k, &out->hits);
    if (!s.ok()) return report(s, error);
    *results = out.release();
    return EMBEDAPT_OK;
  });
}

embedapt_code embedapt_search_filtered(const embedapt_store* store, const float* query, size_t dim, int k,
                                       const char* filter, embedapt_results** results, char** error) {
  return guarded("embedapt_search_filtered", error, [&] {
    if (store == nullptr || results == nullptr) {
      return invalid("embedapt_search_filtered: store and results must not be NULL", error);
    }
    embedapt::SearchOptions options;
    options.k = k;
    if (embedapt_code code = parse_filter(filter, &options.filter, error)) return code;
    auto out = std::make_unique<embedapt_results>();
    embedapt::Status s = store->store->search(query, dim, options, &out->hits);
    if (!s.ok()) return report(s, error);
    *results = out.release();
    return EMBEDAPT_OK;
  });
}

void embedapt_search_options_init(embedapt_search_options* options) {
  if (options == nullptr) return;
  const embedapt::SearchOptions defaults;
  *options = embedapt_search_options{};
  options->k = defaults.k;
  options->ef_search = defaults.ef_search;
  options->nprobe = defaults.nprobe;
  options->ids_only = defaults.ids_only;
}

embedapt_code embedapt_search_with(const embedapt_store* store, const float* query, size_t dim,
                                   const embedapt_search_options* options, embedapt_results** results,
                                   char** error) {
  return guarded("embedapt_search_with", error, [&] {
    if (store == nullptr || results == nullptr) {
      return invalid("embedapt_search_with: store and results must not be NULL", error);
    }
    embedapt_search_options given;
    embedapt_search_options_init(&given);
    if (options != nullptr) given = *options;
    embedapt::SearchOptions o(given.k);
    if (embedapt_code code = parse_filter(given.filter, &o.filter, error)) return code;
    o.ef_search = given.ef_search;
    o.nprobe = given.nprobe;
    o.ids_only = given.ids_only != 0;
    auto out = std::make_unique<embedapt_results>();
    embedapt::Status s = store->store->search(query, dim, o, &out->hits);
    if (!s.ok()) return report(s, error);
    *results = out.release();
    return EMBEDAPT_OK;
  });
}

size_t embedapt_results_count(const embedapt_results* results) {
  return results == nullptr ? 0 : results->hits.size();
}

const char* embedapt_results_id(const embedapt_results* results, size_t i) {
  if (results == nullptr || i >= results->hits.size()) return nullptr;
  return results->hits[i].id.c_str();
}

float embedapt_results_score(const embedapt_results* results, size_t i) {
  if (results == nullptr || i >= results->hits.size()) return std::numeric_limits<float>::quiet_NaN();
  return results->hits[i].score;
}

const void* embedapt_results_payload(const embedapt_results* results, size_t i, size_t* len) {
  if (results == nullptr || i >= results->hits.size()) {
    if (len != nullptr) *len = 0;
    return nullptr;
  }
  const std::string& payload = results->hits[i].payload;
  if (len != nullptr) *len = payload.size();
  return payload.empty() ? nullptr : payload.data();  // NULL for none, as ids_only promises
}

const char* embedapt_results_metadata(const embedapt_results* results, size_t i) {
  if (results == nullptr || i >= results->hits.size()) return nullptr;
  return results->hits[i].metadata.c_str();
}

void embedapt_results_free(embedapt_results* results) { delete results; }

void embedapt_free(void* p) { std::free(p); }

// ---------------------------------------------------------------- the loop

embedapt_code embedapt_log_query(embedapt_store* store, const float* query, size_t dim,
                                 const char* const* result_ids, size_t n_results, uint64_t* query_id,
                                 char** error) {
  return guarded("embedapt_log_query", error, [&] {
    if (store == nullptr || query_id == nullptr)
      return invalid("embedapt_log_query: store and query_id must not be NULL", error);
    if (result_ids == nullptr && n_results != 0)
      return invalid("embedapt_log_query: result_ids is NULL but n_results is not 0", error);
    std::vector<std::string> ids;
    for (size_t i = 0; i < n_results; ++i) {
      if (result_ids[i] == nullptr) return invalid("embedapt_log_query: a result id is NULL", error);
      ids.emplace_back(result_ids[i]);
    }
    return report(store->store->log_query(query, dim, ids, query_id), error);
  });
}

embedapt_code embedapt_log_hit(embedapt_store* store, uint64_t query_id, const char* doc_id, char** error) {
  return guarded("embedapt_log_hit", error, [&] {
    if (store == nullptr || doc_id == nullptr)
      return invalid("embedapt_log_hit: store and doc_id must not be NULL", error);
    return report(store->store->log_hit(query_id, doc_id), error);
  });
}

void embedapt_retrain_options_init(embedapt_retrain_options* options) {
  if (options == nullptr) return;
  const embedapt::RetrainOptions defaults;
  *options = embedapt_retrain_options{};
  options->kind = "linear";
  options->hidden = defaults.hidden;
  options->seed = defaults.seed;
  options->threads = defaults.threads;
  options->activate = EMBEDAPT_ACTIVATE_IF_BETTER;
}

embedapt_code embedapt_retrain(embedapt_store* store, const embedapt_retrain_options* options,
                               embedapt_retrain_report* report_out, char** error) {
  return guarded("embedapt_retrain", error, [&] {
    if (store == nullptr) return invalid("embedapt_retrain: store must not be NULL", error);
    embedapt_retrain_options given;
    embedapt_retrain_options_init(&given);
    if (options != nullptr) given = *options;
    embedapt::RetrainOptions o;
    if (given.kind != nullptr) o.kind = given.kind;
    o.side = given.both_sides ? embedapt::AdapterSide::kBoth : embedapt::AdapterSide::kQuery;
    // 0 is "the default" for every number but the seed (a zeroed struct was
    // refused: threads 0, hidden 0).
    if (given.hidden != 0) o.hidden = given.hidden;
    o.epochs = given.epochs;
    o.lr = given.lr;
    if (given.loss != nullptr) o.loss = given.loss;
    o.folds = given.folds;
    o.seed = given.seed;
    if (given.threads != 0) o.threads = given.threads;
    o.trust_code = store->trust_code;
    switch (given.activate) {
      case EMBEDAPT_ACTIVATE_NEVER:
        o.activate = embedapt::ActivationPolicy::kNever;
        break;
      case EMBEDAPT_ACTIVATE_IF_BETTER:
        o.activate = embedapt::ActivationPolicy::kIfBetter;
        break;
      case EMBEDAPT_ACTIVATE_ALWAYS:
        o.activate = embedapt::ActivationPolicy::kAlways;
        break;
      default:
        return invalid("embedapt_retrain: activate must be an embedapt_activation", error);
    }
    embedapt::RetrainReport r;
    embedapt::Status s = embedapt::retrain(store->store.get(), o, &r);
    if (!s.ok()) return report(s, error);
    if (report_out != nullptr) {
      // The C enum lists the decisions in the C++ enum's order.
      report_out->decision = static_cast<embedapt_decision>(r.decision);
      report_out->version = r.version;
      report_out->queries = r.queries;
      report_out->base_hit = r.base.hit;
      report_out->base_mrr = r.base.mrr;
      report_out->adapter_hit = r.adapter.hit;
      report_out->adapter_mrr = r.adapter.mrr;
      report_out->gain = r.hit_gain.mean;
      report_out->gain_low = r.hit_gain.low;
      report_out->gain_high = r.hit_gain.high;
      report_out->rr_gain = r.rr_gain.mean;
      report_out->log_rank_gain = r.log_rank_gain.mean;
      report_out->log_rank_low = r.log_rank_gain.low;
      report_out->log_rank_high = r.log_rank_gain.high;
      report_out->z = std::isfinite(r.gain_z) ? r.gain_z : 1e9;
      report_out->min_z = r.min_gain_z;
      report_out->epochs_run = r.epochs_run;
      report_out->seconds = r.read_seconds + r.train_seconds + r.store_seconds;
    }
    return EMBEDAPT_OK;
  });
}

embedapt_code embedapt_activate(embedapt_store* store, uint64_t version, char** error) {
  return guarded("embedapt_activate", error, [&] {
    if (store == nullptr) return invalid("embedapt_activate: store must not be NULL", error);
    return report(store->store->activate_adapter(version), error);
  });
}

embedapt_code embedapt_rollback(embedapt_store* store, char** error) {
  return guarded("embedapt_rollback", error, [&] {
    if (store == nullptr) return invalid("embedapt_rollback: store must not be NULL", error);
    return report(store->store->rollback_adapter(), error);
  });
}

embedapt_code embedapt_list_adapters(const embedapt_store* store, embedapt_adapters** adapters,
                                     char** error) {
  return guarded("embedapt_list_adapters", error, [&] {
    if (store == nullptr || adapters == nullptr)
      return invalid("embedapt_list_adapters: store and adapters must not be NULL", error);
    auto out = std::make_unique<embedapt_adapters>();
    embedapt::Status s = store->store->list_adapters(&out->versions);
    embedapt::StoreStats stats;
    if (s.ok()) s = store->store->stats(&stats);
    if (!s.ok()) return report(s, error);
    out->active = stats.active_adapter;
    *adapters = out.release();
    return EMBEDAPT_OK;
  });
}

size_t embedapt_adapters_count(const embedapt_adapters* adapters) {
  return adapters == nullptr ? 0 : adapters->versions.size();
}

embedapt_code embedapt_adapters_get(const embedapt_adapters* adapters, size_t i, embedapt_adapter_info* out,
                                    char** error) {
  return guarded("embedapt_adapters_get", error, [&] {
    if (adapters == nullptr || out == nullptr)
      return invalid("embedapt_adapters_get: adapters and out must not be NULL", error);
    if (i >= adapters->versions.size()) {
      return report(embedapt::Status::InvalidArgument(
                        "embedapt_adapters_get: index " + std::to_string(i) + " past the " +
                        std::to_string(adapters->versions.size()) + " versions"),
                    error);
    }
    const embedapt::AdapterVersion& v = adapters->versions[i];
    out->version = v.version;
    out->parent = v.parent;
    out->created_unix = v.created_unix;
    out->active = v.version == adapters->active ? 1 : 0;
    out->config_json = v.config_json.c_str();
    out->metrics_json = v.metrics_json.c_str();
    return EMBEDAPT_OK;
  });
}

void embedapt_adapters_free(embedapt_adapters* adapters) { delete adapters; }

embedapt_code embedapt_get_stats(const embedapt_store* store, embedapt_stats* out, char** error) {
  return guarded("embedapt_get_stats", error, [&] {
    if (store == nullptr || out == nullptr)
      return invalid("embedapt_get_stats: store and out must not be NULL", error);
    embedapt::StoreStats stats;
    embedapt::Status s = store->store->stats(&stats);
    if (!s.ok()) return report(s, error);
    out->count = stats.count;
    out->dim = stats.dim;
    out->active_adapter = stats.active_adapter;
    out->adapter_versions = stats.adapter_versions;
    out->logged_queries = stats.logged_queries;
    out->logged_hits = stats.logged_hits;
    out->disk_bytes = stats.disk_bytes;
    return EMBEDAPT_OK;
  });
}

}  // extern "C"
