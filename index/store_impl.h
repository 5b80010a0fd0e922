// StoreImpl: the Store on RocksDB + FAISS. Internal; see embedapt/store.h.
//
// On-disk layout of a store directory:
//   db/         RocksDB, the source of truth
//   index.snap  the newest index snapshot (see index/snapshot.h)
//
// A read-only open (Options::read_only) opens db/ as a RocksDB secondary
// instance, whose own info log goes to a temporary directory removed at
// close; it never writes in the store directory.
//
// Column families (integer keys big-endian, see index/codec.h):
//   default      meta: format, store id, dim, metric, index spec, embedder, counters,
//                active adapter and activation history, journal cursors
//                ("cursor/" + name -> seq + state)
//   vectors      iid -> raw floats
//   docs         iid -> id string + payload
//   ids          id string -> iid
//   journal      seq -> op ('a'dd / 'r'emove) + iid, written in the same
//                WriteBatch as the data it describes
//   adapters     version -> AdapterVersion
//   queries      query id -> time, raw vector, result ids
//   query_hashes sha256(raw vector) -> query id (dedup)
//   hits         hit seq -> query id + doc id + time (oldest first)
//   hit_pairs    query id + doc id -> hit seq (dedup)
//   metadata     iid -> the record's metadata, normalised JSON (records
//                without metadata have no entry)
//   metadata_index  the metadata index (see index/metadata.h), written in the
//                WriteBatch that writes or deletes the record
//
// Every record gets a fresh internal id (iid) on each upsert and iids are
// never reused, so a journal entry names exactly one version of a record and
// replaying a journal suffix onto an older snapshot is idempotent.
//
// Locking: write_mu_ serializes mutations, snapshots and rebuilds; mu_ guards
// the in-memory index, the ids by iid and the active adapter (shared for
// searches, exclusive
// for the short moment a mutation applies or an index is swapped). RocksDB is
// written before the index is updated, so a search may find an iid whose
// record is already gone; it skips it.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "embedapt/store.h"
#include "index/id_names.h"
#include "index/vector_index.h"

namespace embedapt {

enum ColumnFamily {
  kMeta,
  kVectors,
  kDocs,
  kIds,
  kJournal,
  kAdapters,
  kQueries,
  kQueryHashes,
  kHits,
  kHitPairs,
  kMetadata,
  kMetadataIndex,
  kColumnFamilyCount
};

class StoreImpl final : public Store {
 public:
  static Status open(const std::string& path, const Options& options, std::unique_ptr<Store>* out);
  ~StoreImpl() override;

  Status upsert(std::string_view id, const float* vector, size_t dim, std::string_view payload) override;
  Status upsert_batch(const std::vector<Record>& records) override;
  Status remove(std::string_view id) override;
  Status remove_matching(const Filter& filter, uint64_t* removed) override;
  Status get(std::string_view id, Record* out) const override;
  Status search(const float* query, size_t dim, const SearchOptions& options,
                std::vector<Hit>* hits) const override;
  Status search_batch(const float* queries, size_t n, const SearchOptions& options,
                      std::vector<std::vector<Hit>>* results) const override;
  Status view(std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out) const override;
  Status scan(const std::function<bool(const Record&)>& fn) const override;
  Status log_query(const float* query, size_t dim, const std::vector<std::string>& result_ids,
                   uint64_t* query_id) override;
  Status log_hit(uint64_t query_id, std::string_view doc_id) override;
  Status scan_log(const std::function<bool(const LoggedQuery&)>& fn) const override;
  Status put_adapter(AdapterVersion* version) override;
  Status get_adapter(uint64_t version, AdapterVersion* out) const override;
  Status list_adapters(std::vector<AdapterVersion>* out) const override;
  Status activate_adapter(uint64_t version) override;
  Status rollback_adapter() override;
  Status read_journal(uint64_t after_seq, const std::function<bool(const JournalEntry&)>& fn) const override;
  Status put_cursor(std::string_view name, const JournalCursor& cursor) override;
  Status get_cursor(std::string_view name, JournalCursor* out) const override;
  Status remove_cursor(std::string_view name) override;
  Status set_embedder(std::string_view identity) override;
  Status stats(StoreStats* out) const override;
  Status verify() const override;
  Status flush() override;
  Status sync() override;

  // What a search runs against: search() uses the defaults, views their own.
  struct SearchTarget {
    const VectorIndex* index = nullptr;      // nullptr: the live index
    bool active_adapter = true;              // apply the active adapter to queries...
    const Adapter* query_adapter = nullptr;  // ...or else this one (nullptr: none)
    // With the live index and no active adapter: the document side the live
    // index had when the caller chose it. An activation that rebuilt it for
    // another one since makes the search fail rather than mix the two.
    uint64_t live_doc_version = 0;
  };
  // Searches `n` raw queries of the store's dim.
  Status search_with(const SearchTarget& target, const float* queries, size_t n, const SearchOptions& options,
                     std::vector<std::vector<Hit>>* results) const;
  // Whether `adapter` maps documents the way the live index was built; if so,
  // *doc_version is the live index's document-side version at that moment.
  bool live_index_serves(const Adapter* adapter, uint64_t* doc_version) const;

 private:
  StoreImpl(std::string path, Options options);

  Status open_db(bool create);
  Status load_meta(bool create);
  Status load_active_adapter();
  Status recover_index();
  // Reads every record's id from RocksDB into ids_by_iid_.
  // `newest_iid`, when given, receives the largest iid named.
  Status load_ids(uint64_t* newest_iid = nullptr);
  // Corruption unless the families agree on the records (load_ids's count
  // against the index's, the newest record in docs and vectors).
  Status check_families_agree(uint64_t newest_iid) const;

  // Maps `n` raw vectors into the space of an index built under
  // `doc_adapter` (nullptr: none): transform, then normalise for cosine.
  // `raw_squares`, when given, holds each raw vector's sum_of_squares (its
  // check's): without an adapter, the normalisation needs no sum of its own.
  Status to_index_space(const Adapter* adapter, const float* raw, size_t n, std::vector<float>* out,
                        const double* raw_squares = nullptr) const;
  // Names an ids-only search's hits into *results (one entry per query, each
  // the query's hits with id and score), from ids_by_iid_, on OpenMP's
  // threads when `parallel`; requires mu_.
  void name_hits(const std::vector<std::vector<Neighbor>>& neighbors, bool parallel,
                 std::vector<std::vector<Hit>>* results) const;
  // A fresh index of every stored vector, documents mapped by `doc_adapter`.
  Status build_index(const Adapter* doc_adapter, std::unique_ptr<VectorIndex>* out) const;

  // The following require write_mu_.
  Status write_batch_locked(rocksdb::WriteBatch* batch);
  // Applies a write RocksDB already committed to the index (see store.cpp).
  Status apply_committed_locked(const std::function<Status(VectorIndex*)>& mutate);
  Status rebuild_if_stale_locked();
  Status after_mutation_locked();
  Status snapshot_locked();
  Status flush_memtables_locked();
  Status set_active_locked(uint64_t version, bool push_history);
  Status evict_queries_locked(uint64_t n, rocksdb::WriteBatch* batch, uint64_t* hits);

  // kFailedPrecondition naming `what` when the store was opened read-only.
  Status check_writable(const char* what) const;

  // Background retraining (Options::background_retrain): log_hit counts new
  // hits; the thread retrains once enough arrived and the interval passed.
  void count_new_hit();
  void background_loop();

  // Adds to `batch` the deletion of record `iid` (vector, document,
  // metadata and its index keys) and its journal entry at ++*seq. The
  // metadata is `metadata` if the record is in the batch, else read.
  Status delete_record(uint64_t iid, const nlohmann::json* metadata, rocksdb::WriteBatch* batch,
                       uint64_t* seq) const;
  // The iids whose metadata matches `filter`, at the view `read` gives.
  Status match(const Filter& filter, const rocksdb::ReadOptions& read, IdSet* out) const;
  // Reads the metadata of `iid` into *out ("" if none).
  Status read_metadata(const rocksdb::ReadOptions& read, const std::string& iid_key, std::string* out) const;
  Status verify_metadata() const;

  // kInvalidArgument unless `v` holds the store's dim finite floats (not all
  // zero under the cosine metric); the caller adds which vector it was.
  // `squares`, when given, receives v's sum_of_squares.
  Status validate_vector(const float* v, size_t dim, double* squares = nullptr) const;
  Status get_u64(const std::string& key, uint64_t* v, uint64_t fallback) const;
  rocksdb::ColumnFamilyHandle* cf(ColumnFamily family) const { return handles_[family]; }
  std::string snapshot_path() const { return path_ + "/index.snap"; }

  const std::string path_;
  Options options_;  // dim, metric and index_spec as stored
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::WriteOptions write_options_;
  std::string secondary_dir_;  // read-only opens: the secondary instance's info log

  mutable std::mutex write_mu_;
  // Guarded by write_mu_.
  uint64_t next_iid_ = 1;
  uint64_t journal_seq_ = 0;
  uint64_t snapshot_seq_ = 0;
  uint64_t next_adapter_ = 1;
  uint64_t next_query_ = 1;
  uint64_t next_hit_ = 1;
  uint64_t hit_count_ = 0;
  uint64_t query_count_ = 0;
  std::vector<uint64_t> adapter_history_;    // previously active versions, oldest first
  std::map<std::string, uint64_t> cursors_;  // name -> seq; snapshots keep the journal after the lowest
  std::string embedder_;
  std::string store_id_;  // random, made at creation; snapshots carry it
  std::string recovery_;

  mutable std::shared_mutex mu_;
  // Guarded by mu_.
  std::unique_ptr<VectorIndex> index_;
  std::shared_ptr<const Adapter> active_;  // nullptr: none, or not served
  uint64_t active_version_ = 0;
  Status active_error_;               // why active_version_ is not served (ok: it is, or none)
  uint64_t doc_adapter_version_ = 0;  // the version index_ documents went through (kBoth only)
  bool index_stale_ = false;          // a committed write failed to reach index_; rebuild before use
  // Every stored record's id by iid, updated with index_: an ids-only search
  // (SearchOptions::ids_only) names its hits without reading RocksDB.
  IdNames ids_by_iid_;

  // Background retraining; the thread runs only if after_hits > 0.
  std::thread background_;
  std::atomic<bool> cancel_background_{false};  // set by the destructor
  std::mutex background_mu_;
  std::condition_variable background_cv_;
  // Guarded by background_mu_.
  bool closing_ = false;
  uint64_t hits_since_retrain_ = 0;
  bool retrained_ = false;  // a background retrain has started since open
  std::chrono::steady_clock::time_point last_retrain_start_;
};

}  // namespace embedapt
