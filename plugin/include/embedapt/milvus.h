// Serving a store from a Milvus collection while the store keeps learning.
//
// An app that outgrows one machine moves its vectors to Milvus; the store
// stays the source of truth and the learning layer: it keeps the records, the
// query log and the adapter versions, and milvus_sync() mirrors its records
// into a collection. Queries go through the store's adapter and then to
// Milvus, so a new query-side version serves at once with no re-upload.
//
// The client speaks Milvus's RESTful API (v1, the proxy port) for data and
// searches, and three gRPC calls on the same port (CreateCollection,
// CreateIndex, LoadCollection) because that REST API cannot choose an index
// type. Requires Milvus 2.3 or later without authentication; tested against
// the embedded server of the `milvus` 2.3.5 PyPI package.
//
// The collection: `id` (VarChar primary key, the record id), `version`
// (Int64, the record version it holds, see Record::version) and `vector`
// (FloatVector). Milvus 2.3's REST searches are of bounded staleness, so a
// sync returns only once its writes are visible to them: a search sees every
// sync that returned. Its documents are the raw vectors (normalised for
// cosine) unless the store's active adapter covers both sides; then they are
// that adapter's output, and activating another both-side version (or going
// back to a query-side one) makes the next sync push everything again.
//
// Where the sync stands is a journal cursor in the store (Store::put_cursor),
// named after the URI without its user name and password (so they never reach
// the store's files) and the collection. It advances only after Milvus
// acknowledged what it covers, and every request is idempotent (upsert by id,
// delete by version), so a sync killed at any point is finished by the next.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "embedapt/adapter.h"
#include "embedapt/status.h"
#include "embedapt/store.h"

namespace embedapt {

struct MilvusCollection {
  std::string uri;   // the proxy, e.g. "http://127.0.0.1:19530" (no trailing path)
  std::string name;  // the collection: letters, digits and '_', starting with a letter or '_'
  // Per attempt of each request (0.001 to 86400); a request is tried 4 times,
  // so a server that never answers fails after about 4 x this.
  double timeout_seconds = 60;
};

enum class MilvusIndex {
  kFlat,  // exact search
  kHnsw,  // M=32, efConstruction=200
  kIvf,   // IVF_FLAT, nlist = 4 * sqrt(records) at the full push
};        // Milvus 2.3's REST search takes no parameters: ef and nprobe are the server's defaults

const char* MilvusIndexName(MilvusIndex index);  // "FLAT", "HNSW", "IVF"
Status ParseMilvusIndex(std::string_view name, MilvusIndex* out);

struct MilvusSyncOptions {
  MilvusIndex index = MilvusIndex::kFlat;  // used when the collection is (re)created
  int shards = 1;                          // likewise
  int replicas = 1;                        // in-memory replicas the collection is loaded with
  size_t batch_size = 500;                 // records per upsert request
  bool trust_code = false;                 // lets a TorchScript both-side adapter map documents
  bool show_progress = false;              // progress bar on stderr
};

struct MilvusSyncReport {
  bool full = false;         // the collection was (re)created and every record pushed
  std::string reason;        // why it was, or "" for an incremental sync
  uint64_t upserted = 0;     // records sent
  uint64_t deleted = 0;      // record versions deleted (removed records and replaced versions)
  uint64_t seq = 0;          // the store's journal position the collection now reflects
  uint64_t doc_adapter = 0;  // the both-side version its documents went through (0: raw)
};

// Brings the collection up to date with `store`: the first time (or when
// the collection is missing, its documents need another adapter, the index
// type asked for differs, or the journal no longer holds what it lacks) it
// drops and recreates the collection and pushes every record; otherwise it
// sends only the journal's changes since the last sync.
Status milvus_sync(Store& store, const MilvusCollection& collection, const MilvusSyncOptions& options,
                   MilvusSyncReport* report);

// A view searching the collection with `adapter` applied to the queries
// (nullptr: none), as Store::view() searches the store. `adapter` must fit
// the collection's documents: a query-side one (or none) needs raw ones, a
// both-side one the documents it mapped, which the view cannot check (pass
// the version the last sync used). Code::kFailedPrecondition if the store
// was never synced to the collection, or the sides do not fit. Results are
// checked: an id once, at most k, finite scores, and only ids the store holds
// (one removed since the last sync is dropped), so the view reads `store` at
// each search and must not outlive it.
Status milvus_view(const Store& store, const MilvusCollection& collection,
                   std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out);

// The serving call: `n` raw queries (n * dim floats) through the store's
// active adapter, read at each call (so a newly activated query-side
// version serves at once), searched in the collection; results best first.
// Log them and the user's choices with Store::log_query / log_hit so that
// retraining learns from the traffic Milvus serves. Code::kFailedPrecondition
// if the active adapter maps documents and the collection's were not
// synced under it (run milvus_sync).
Status milvus_search(const Store& store, const MilvusCollection& collection, const float* queries, size_t n,
                     int k, bool trust_code, std::vector<std::vector<Hit>>* results);

}  // namespace embedapt
