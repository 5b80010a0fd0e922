// MilvusClient: the requests embedapt sends to one Milvus collection.
// Internal; see embedapt/milvus.h for the collection's layout and why the
// client speaks REST for data and gRPC only to create the collection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "embedapt/milvus.h"
#include "embedapt/status.h"

namespace embedapt {

struct MilvusRow {
  std::string id;
  uint64_t version = 0;
  const float* vector = nullptr;  // dim floats, owned by the caller
};

struct MilvusHit {
  std::string id;
  float distance = 0;  // inner product (higher is better) or squared L2 (lower is better)
};

// What the store remembers about a collection it syncs to, kept in its
// journal cursor (JournalCursor::state) named by sync_cursor_name().
struct MilvusSyncState {
  MilvusIndex index = MilvusIndex::kFlat;
  uint64_t doc_adapter = 0;  // the both-side version the documents went through (0: raw)
  bool complete = false;     // false while a full push is under way
};
// Named after the collection's address (scheme, host, port, path) and name:
// never the URI's user name and password, which the store would keep in its
// files. Two URIs differing only in credentials reach the same collection.
std::string sync_cursor_name(const MilvusCollection& collection);
// The name stores used before: the whole URI, credentials too. Readers fall
// back to it once (a store synced before must not push everything again), and
// the next sync that completes moves the cursor off it.
std::string legacy_sync_cursor_name(const MilvusCollection& collection);
Status get_sync_cursor(const Store& store, const MilvusCollection& collection, JournalCursor* out);
std::string encode_sync_state(const MilvusSyncState& state);
bool parse_sync_state(const std::string& bytes, MilvusSyncState* out);

// Milvus's metric for a store's: cosine is inner product over normalised vectors.
const char* milvus_metric(Metric metric);

// Maps `n` vectors of the adapter's in_dim (nullptr: none) to the
// collection's space: transform, then normalise for cosine.
Status to_collection_space(const Adapter* adapter, Metric metric, const float* in, size_t n, int in_dim,
                           std::vector<float>* out);

class MilvusClient {
 public:
  // Code::kInvalidArgument for a URI that is not http(s):// or a name Milvus would refuse.
  static Status make(const MilvusCollection& collection, MilvusClient* out);

  // Whether the collection exists.
  Status exists(bool* out) const;
  Status drop() const;
  // Creates the collection (`metric` "IP" or "L2"), its index and loads it;
  // returns once it is loaded. `rows_hint` sizes an IVF index.
  Status create(int dim, const std::string& metric, MilvusIndex index, int shards, int replicas,
                uint64_t rows_hint) const;
  Status upsert(const std::vector<MilvusRow>& rows, int dim) const;
  Status delete_versions(const std::vector<uint64_t>& versions) const;
  // Rows matching a Milvus filter expression, e.g. "version >= 0" for all.
  Status count(const std::string& filter, uint64_t* out) const;
  static std::string versions_filter(const std::vector<uint64_t>& versions);  // "version in [...]"
  // The id -> version rows for `ids` (those present).
  Status versions(const std::vector<std::string>& ids,
                  std::vector<std::pair<std::string, uint64_t>>* out) const;
  // `k` nearest rows to one query vector of `dim` floats, best first.
  // Milvus 2.3's REST search takes no search parameters: HNSW and IVF use
  // the server's defaults for ef and nprobe.
  Status search(const float* query, int dim, int k, std::vector<MilvusHit>* out) const;

 private:
  // POSTs a JSON body to /v1/vector/<path> (GET when body is empty) and
  // returns the "data" of a code-200 answer.
  Status rest(const std::string& path, const std::string& body, std::string* data) const;
  // Calls a MilvusService method over gRPC with a serialized request; its
  // response (a common.Status) must say success.
  Status grpc(const std::string& method, const std::string& request) const;

  MilvusCollection collection_;
};

}  // namespace embedapt
