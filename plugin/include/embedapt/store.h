// Store: an embedded vector store, a FAISS index persisted in RocksDB.
//
// RocksDB is the source of truth: it holds every raw vector, payload, adapter
// version and the query log. The FAISS index is derived from it; snapshots of
// the index are persisted with the journal position they cover, and opening a
// store loads the newest valid snapshot and replays what came after it.
//
// Durability: a call that returned ok() survives a crash of the process
// (kill -9) at any later moment. With Options::sync_writes it also survives a
// crash of the machine; otherwise call flush() at the points that must.
//
// Concurrency: a Store is safe to share between threads. Any number of
// threads may call the const methods (search, get, stats, ...) while one
// thread mutates; mutations are serialized internally. One process at a time
// may open a store for writing: another writable open() gets Code::kBusy
// saying the store is held open for writing. Meanwhile any number of
// processes may open it with Options::read_only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "embedapt/adapter.h"
#include "embedapt/learn.h"
#include "embedapt/status.h"

namespace embedapt {

enum class Metric {
  kCosine,        // vectors are L2-normalised, score = inner product (higher is better)
  kInnerProduct,  // score = inner product (higher is better)
  kL2,            // score = squared L2 distance (lower is better)
};

const char* MetricName(Metric metric);  // "cosine", "ip", "l2"
Status ParseMetric(std::string_view name, Metric* out);

struct Options {
  // Fixed when the store is created; when opening an existing store, 0 / the
  // defaults mean "as stored", anything else must match what is stored.
  int dim = 0;
  Metric metric = Metric::kCosine;
  std::string index_spec = "Flat";  // a FAISS factory string: "Flat", "HNSW32", "IVF256,Flat", ...

  bool create_if_missing = true;
  bool sync_writes = false;  // fsync the log on every write (machine-crash durability)

  // Persist an index snapshot after this many journaled mutations (0: only on
  // flush() and close).
  uint64_t snapshot_every = 100000;

  // The query log keeps at most this many hits; the oldest go first (0: no limit).
  uint64_t query_log_max_hits = 0;

  // Allows the store to load TorchScript adapter versions (kind "torchscript"):
  // opening a store whose active version is one, activating one, rolling back
  // to one. Not remembered by the store; give it on every open that needs it.
  // Off by default because a TorchScript archive is a program, not data:
  // loading it runs code that whoever stored (or imported) the version wrote,
  // with this process's rights. Without it those operations fail with
  // Code::kFailedPrecondition naming the version, and change nothing. Other
  // kinds are plain weights and load either way.
  bool trust_code = false;

  // Opens an existing store for reading only. It takes no lock, so it works
  // while another process holds the store open for writing, and it never
  // stops or waits for that writer. The store is seen as of one consistent
  // moment during open(): RocksDB as a secondary instance (see RocksDB's
  // DB::OpenAsSecondary; it reads the writer's files and writes none), the
  // newest index snapshot, and the journal after it; writes made after that
  // moment are not seen (open again to see them). Every call that writes
  // (upsert, remove, log_query, log_hit, put_adapter, activate, rollback,
  // set_embedder, flush, sync) fails with Code::kFailedPrecondition saying
  // the store was opened read-only. A missing store is Code::kNotFound
  // (create_if_missing does not apply).
  bool read_only = false;

  // Opt-in retraining on a background thread after enough new logged hits
  // (see embedapt/learn.h). Off unless background_retrain.after_hits > 0.
  BackgroundRetrain background_retrain;
};

// Limits on what a store accepts (the dimension: kMaxDim, in adapter.h).
constexpr size_t kMaxIdBytes = 1024;
constexpr size_t kMaxPayloadBytes = 64u << 20;
// ... and on a record's metadata (Record::metadata).
constexpr size_t kMaxMetadataBytes = 64u << 10;  // of its JSON text
constexpr size_t kMaxMetadataFields = 256;
constexpr size_t kMaxMetadataFieldBytes = 256;  // of a field name
constexpr size_t kMaxMetadataListItems = 1024;

struct Record {
  std::string id;
  std::vector<float> vector;  // as given (raw, never normalised or adapted)
  std::string payload;
  // A JSON object of fields a Filter can test ("" or "{}": none). Values are
  // strings, numbers (compared as doubles), bools or lists of strings; at
  // most 64 KiB of JSON, 256 fields, field names of 1 to 256 bytes not
  // starting with '$', lists of at most 1024 items. Stored with the record
  // (atomically), indexed, returned normalised (keys sorted, no spaces).
  std::string metadata;
  // Set by get() and scan(), ignored by upsert: every upsert gives the record
  // a fresh version, never reused, and the journal names versions.
  uint64_t version = 0;
};

// One journaled mutation: a record version added, or removed (by remove() or
// by an upsert that replaced it).
struct JournalEntry {
  uint64_t seq = 0;
  bool removed = false;
  uint64_t version = 0;
  // For an addition whose version is still stored: the record. Empty id if
  // that version was removed since.
  Record record;
};

// Where a consumer of the journal (a sync to a remote index) has got to.
struct JournalCursor {
  uint64_t seq = 0;   // every mutation up to this journal position is consumed
  std::string state;  // the consumer's own bytes, kept alongside
};

struct Hit {
  std::string id;
  float score = 0;
  std::string payload;
  std::string metadata;  // as get() returns it
};

// A metadata filter, parsed once and reused by any number of searches.
//
// The JSON form is the Mongo-style one: an object whose entries must all
// hold, each either a field condition or a logical operator:
//   {"tenant": "acme", "year": {"$gte": 2020},
//    "$or": [{"lang": "da"}, {"lang": {"$in": ["de", "sv"]}}]}
// Field conditions: a bare value (equality) or an object of operators, all of
// which must hold: $eq $ne (a string, number or bool), $gt $gte $lt $lte (a
// number), $in $nin (a list of those), $contains (a string: the field is a
// list holding it), $not (an operator object). Logical: $and and $or (a
// non-empty list of filters), $not (a filter). A record lacking the field
// fails every condition on it except the negative ones ($ne, $nin, $not),
// which it passes. Equality compares like with like: the string "1" never
// equals the number 1, and a list field matches only $contains.
class Filter {
 public:
  Filter() = default;  // matches every record

  // Code::kInvalidArgument, one line naming the operator or field, for
  // malformed JSON, an unknown operator or an operand of the wrong type.
  // "{}" matches every record.
  static Status parse(std::string_view json, Filter* out);

  bool matches_all() const { return root_ == nullptr; }
  const std::string& json() const { return json_; }  // normalised; "" if matches_all()

  struct Node;  // the parsed tree, internal (index/filter.h)
  const Node* root() const { return root_.get(); }

 private:
  std::shared_ptr<const Node> root_;
  std::string json_;
};

struct StoreStats {
  uint64_t count = 0;
  int dim = 0;
  Metric metric = Metric::kCosine;
  std::string index_spec;
  uint64_t journal_seq = 0;   // last journaled mutation
  uint64_t snapshot_seq = 0;  // mutation the newest snapshot covers
  uint64_t disk_bytes = 0;
  uint64_t active_adapter = 0;  // 0: none
  uint64_t adapter_versions = 0;
  uint64_t logged_queries = 0;
  uint64_t logged_hits = 0;
  std::string embedder;  // identity of the embedder the vectors came from ("" if unknown)
  std::string recovery;  // how open() got its index: snapshot + replay, or a rebuild and why
  // Why the active adapter is not served ("" when it is, or none is active);
  // see Store::open.
  std::string active_adapter_error;
  bool read_only = false;  // opened with Options::read_only
};

// One stored adapter version.
struct AdapterVersion {
  uint64_t version = 0;  // assigned by put_adapter, starting at 1
  uint64_t parent = 0;   // the version it was trained from (0: none)
  std::string config_json;
  std::string weights;           // safetensors bytes
  std::string data_fingerprint;  // of the training pairs
  std::string metrics_json;      // validation metrics, as the trainer wrote them
  int64_t created_unix = 0;
};

// One logged query with the documents users chose for it (its hits), as the
// trainer reads it.
struct LoggedQuery {
  uint64_t id = 0;
  std::vector<float> vector;         // raw query vector
  std::vector<std::string> hit_ids;  // the documents chosen, in id order
};

// How a search runs. search(query, dim, {10}, &hits) asks for 10 hits with
// the defaults for the rest.
struct SearchOptions {
  SearchOptions() = default;
  SearchOptions(int k_) : k(k_) {}  // implicit, for the {10} shorthand

  // Hits wanted per query; must be positive. A search returns min(k, live
  // records) hits, fewer only when an approximate index misses some.
  int k = 10;
  // Only records whose metadata matches are searched, inside the index
  // search (not by dropping results afterwards): a filtered search returns
  // min(k, matching records) hits, whatever the index type.
  Filter filter;

  // The approximate indexes' search-time knobs: more finds more of the true
  // neighbours and costs more time. 0 keeps the index's own default. Setting
  // one the store's index has not (ef_search on a Flat or IVF index, nprobe
  // on anything but IVF), or out of its range, fails with kInvalidArgument.
  //
  // HNSW: the candidate list a search keeps (FAISS efSearch), in
  // 1..kMaxEfSearch; never below k. Default 16. Under a filter the list
  // holds matching records only (the walk passes through the others, so it
  // walks longer the fewer match); at 5% of the records or fewer the
  // matching ones are scored exactly instead.
  int ef_search = 0;
  // IVF: the lists a search probes (FAISS nprobe), in 1..nlist. Default 1.
  // A filtered search probes more lists the fewer records match, and more
  // again while a query comes up short of k hits.
  int nprobe = 0;

  // Hits carry their id and score only; payload and metadata stay empty.
  // The same hits in the same order as without it, but the search reads no
  // record from RocksDB (ids are kept in memory), which is most of what a
  // search costs beyond the index's own work on a fast index: for callers
  // that want ids, or fetch the few records they show with get(). A hit's
  // record may be removed by a concurrent writer right after the search
  // returns, as with any search.
  bool ids_only = false;
};

// Larger candidate lists than this only cost memory and time.
constexpr int kMaxEfSearch = 1 << 16;

// A searchable, read-only view of the store under a chosen adapter.
class SearchView {
 public:
  virtual ~SearchView() = default;
  // Searches `n` raw query vectors (n * dim floats); results best first.
  virtual Status search(const float* queries, size_t n, const SearchOptions& options,
                        std::vector<std::vector<Hit>>* results) const = 0;
};

class Store {
 public:
  // Opens (or creates) the store at `path` and loads the active adapter
  // version. A store whose active version cannot be served here (TorchScript
  // without options.trust_code, a kind not registered in this process,
  // weights that do not load or do not fit) still opens, so it can be
  // inspected, verified and rolled back: the adapter is not applied, search()
  // and search_batch() fail with Code::kFailedPrecondition naming the
  // version and why, and StoreStats::active_adapter_error says the same until
  // another version is activated (or rolled back to).
  static Status open(const std::string& path, const Options& options, std::unique_ptr<Store>* out);

  virtual ~Store() = default;

  // Inserts or replaces the record `id` (without metadata). `dim` must equal
  // the store's dim; NaN and Inf are refused.
  virtual Status upsert(std::string_view id, const float* vector, size_t dim, std::string_view payload) = 0;
  // All or nothing: either every record is written or none is. A record
  // replaces the whole stored one, metadata included.
  virtual Status upsert_batch(const std::vector<Record>& records) = 0;
  // Code::kNotFound if `id` is not stored.
  virtual Status remove(std::string_view id) = 0;
  // Removes every record whose metadata matches `filter`, all or nothing
  // (one atomic write); *removed (if not null) gets how many.
  virtual Status remove_matching(const Filter& filter, uint64_t* removed) = 0;
  virtual Status get(std::string_view id, Record* out) const = 0;

  // Nearest neighbours of a raw query (the active adapter, if any, is applied).
  // The hits (a batch's results) passed in are overwritten; an ids-only
  // search writes into their memory, so that one reused from search to
  // search costs no allocation per hit. On failure their contents are
  // unspecified.
  virtual Status search(const float* query, size_t dim, const SearchOptions& options,
                        std::vector<Hit>* hits) const = 0;
  virtual Status search_batch(const float* queries, size_t n, const SearchOptions& options,
                              std::vector<std::vector<Hit>>* results) const = 0;

  // A view that searches as if `adapter` were active (nullptr: no adapter).
  // Documents are transformed when the adapter's side is kBoth, which builds
  // a separate index of the same type from the raw vectors; when the document
  // side matches the live index, the view searches that one, and fails with
  // Code::kFailedPrecondition once an activation rebuilds the live index for
  // another document side (make a new view then). A view must not outlive
  // its store; it is safe to search from many threads.
  virtual Status view(std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out) const = 0;

  // Calls `fn` for every stored record, in id order, until it returns false.
  virtual Status scan(const std::function<bool(const Record&)>& fn) const = 0;

  // The query log. A query is identified by its vector: logging the same
  // vector again returns the same id. Result and hit ids are record ids
  // (1..kMaxIdBytes bytes). log_hit of a pair already logged is a no-op.
  virtual Status log_query(const float* query, size_t dim, const std::vector<std::string>& result_ids,
                           uint64_t* query_id) = 0;
  virtual Status log_hit(uint64_t query_id, std::string_view doc_id) = 0;
  // Calls `fn` for every logged query that has hits, in query id order, as of
  // one consistent point, until it returns false. Hits whose document was
  // removed since are included: the log records what users chose.
  virtual Status scan_log(const std::function<bool(const LoggedQuery&)>& fn) const = 0;

  // Adapter versions. put_adapter assigns the version number.
  virtual Status put_adapter(AdapterVersion* version) = 0;
  virtual Status get_adapter(uint64_t version, AdapterVersion* out) const = 0;
  virtual Status list_adapters(std::vector<AdapterVersion>* out) const = 0;  // without weights
  // Makes `version` the one search() applies (0: none). Atomic: concurrent
  // searches see either the old or the new adapter, never a mix. A version
  // that cannot be served (another embedder or dimension, a TorchScript one
  // without Options::trust_code) is refused and the active one stays.
  virtual Status activate_adapter(uint64_t version) = 0;
  // Re-activates the version that was active before the current one.
  virtual Status rollback_adapter() = 0;

  // The journal, for consumers that mirror the store elsewhere. read_journal
  // calls `fn` for each mutation after `after_seq`, oldest first, until it
  // returns false; Code::kFailedPrecondition if some of them are no longer kept.
  // Snapshots trim the journal they cover, except what follows the lowest
  // cursor: a consumer that keeps its position in a cursor can always catch
  // up from it. A cursor nobody follows any more must be removed, or the
  // journal grows without bound. A cursor's seq may not pass journal_seq.
  virtual Status read_journal(uint64_t after_seq,
                              const std::function<bool(const JournalEntry&)>& fn) const = 0;
  virtual Status put_cursor(std::string_view name, const JournalCursor& cursor) = 0;
  virtual Status get_cursor(std::string_view name, JournalCursor* out) const = 0;  // kNotFound if none
  virtual Status remove_cursor(std::string_view name) = 0;                         // no-op if none

  // Identity of the embedder whose vectors this store holds; set once, then
  // adapters trained for another embedder are refused.
  virtual Status set_embedder(std::string_view identity) = 0;

  virtual Status stats(StoreStats* out) const = 0;
  // Checks that the index and RocksDB agree; Code::kCorruption naming the
  // first disagreement if not.
  virtual Status verify() const = 0;
  // Makes everything written so far durable and persists an index snapshot;
  // RocksDB's memtables go to table files too, so the next open (read-only
  // ones included) has nothing to replay.
  virtual Status flush() = 0;
  // Makes everything written so far durable (fsyncs the log), without a
  // snapshot: cheap enough to call after every batch.
  virtual Status sync() = 0;
};

// Stores the adapter exported to `dir` (write_adapter_dir's layout) as a new
// version of `store`, not activated, and sets *version to its number. Refuses
// what the store could not serve: weights that do not load (a TorchScript
// adapter without `trust_code`), another dimension, another embedder. The
// version's metrics record the directory it came from.
Status import_adapter_dir(Store* store, const std::string& dir, bool trust_code, uint64_t* version);

}  // namespace embedapt
