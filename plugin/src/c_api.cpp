// The C ABI (embedapt/embedapt.h) over embedapt::Store.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "embedapt/embedapt.h"
#include "embedapt/store.h"

struct embedapt_store {
  std::unique_ptr<embedapt::Store> store;
  int dim = 0;
};

struct embedapt_results {
  std::vector<embedapt::Hit> hits;
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

}  // namespace

extern "C" {

embedapt_code embedapt_open(const char* path, int dim, const char* metric, const char* index_spec,
                            embedapt_store** store, char** error) {
  return embedapt_open_flags(path, dim, metric, index_spec, 0, store, error);
}

embedapt_code embedapt_open_flags(const char* path, int dim, const char* metric, const char* index_spec,
                                  uint32_t flags, embedapt_store** store, char** error) {
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
  embedapt::Status s = embedapt::Store::open(path, options, &handle->store);
  if (!s.ok()) return report(s, error);
  embedapt::StoreStats stats;
  s = handle->store->stats(&stats);
  if (!s.ok()) return report(s, error);
  handle->dim = stats.dim;
  *store = handle.release();
  return EMBEDAPT_OK;
}

void embedapt_close(embedapt_store* store) { delete store; }

int embedapt_dim(const embedapt_store* store) { return store->dim; }

uint64_t embedapt_count(const embedapt_store* store) {
  embedapt::StoreStats stats;
  return store->store->stats(&stats).ok() ? stats.count : 0;
}

embedapt_code embedapt_upsert(embedapt_store* store, const char* id, const float* vector, size_t dim,
                              const void* payload, size_t payload_len, char** error) {
  if (id == nullptr) return invalid("embedapt_upsert: id must not be NULL", error);
  if (payload == nullptr && payload_len != 0) return invalid("embedapt_upsert: NULL payload", error);
  std::string_view bytes(static_cast<const char*>(payload), payload == nullptr ? 0 : payload_len);
  return report(store->store->upsert(id, vector, dim, bytes), error);
}

embedapt_code embedapt_remove(embedapt_store* store, const char* id, char** error) {
  if (id == nullptr) return invalid("embedapt_remove: id must not be NULL", error);
  return report(store->store->remove(id), error);
}

embedapt_code embedapt_get(const embedapt_store* store, const char* id, float* vector, size_t dim,
                           void** payload, size_t* payload_len, char** error) {
  if (id == nullptr || vector == nullptr)
    return invalid("embedapt_get: id and vector must not be NULL", error);
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
}

embedapt_code embedapt_flush(embedapt_store* store, char** error) {
  return report(store->store->flush(), error);
}

embedapt_code embedapt_search(const embedapt_store* store, const float* query, size_t dim, int k,
                              embedapt_results** results, char** error) {
  if (results == nullptr) return invalid("embedapt_search: results must not be NULL", error);
  auto out = std::make_unique<embedapt_results>();
  embedapt::Status s = store->store->search(query, dim, k, &out->hits);
  if (!s.ok()) return report(s, error);
  *results = out.release();
  return EMBEDAPT_OK;
}

size_t embedapt_results_count(const embedapt_results* results) { return results->hits.size(); }

const char* embedapt_results_id(const embedapt_results* results, size_t i) {
  return results->hits[i].id.c_str();
}

float embedapt_results_score(const embedapt_results* results, size_t i) { return results->hits[i].score; }

const void* embedapt_results_payload(const embedapt_results* results, size_t i, size_t* len) {
  if (len != nullptr) *len = results->hits[i].payload.size();
  return results->hits[i].payload.data();
}

void embedapt_results_free(embedapt_results* results) { delete results; }

void embedapt_free(void* p) { std::free(p); }

}  // extern "C"
