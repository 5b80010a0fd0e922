#include <fmt/format.h>
#include <openssl/rand.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/common/files.h"
#include "core/common/rocksdb_status.h"
#include "core/common/utf8.h"
#include "index/codec.h"
#include "index/filter.h"
#include "index/metadata.h"
#include "index/snapshot.h"
#include "index/store_impl.h"

namespace embedapt {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFormat = "embedapt-store-1";
const char* const kColumnFamilyNames[kColumnFamilyCount] = {
    "default",  // rocksdb::kDefaultColumnFamilyName; meta lives there
    "vectors",      "docs", "ids",       "journal",  "adapters",      "queries",
    "query_hashes", "hits", "hit_pairs", "metadata", "metadata_index"};

// Rows per chunk when rebuilding an index from RocksDB.
constexpr size_t kRebuildChunk = 4096;

// The most query floats a thread's search buffer keeps between searches (a
// batch of 256 queries of 1024 dimensions); a bigger batch's is let go.
constexpr size_t kKeptQueryFloats = size_t{256} * 1024;

std::string doc_value(std::string_view id, std::string_view payload) {
  std::string value;
  codec::put_string(&value, id);
  value.append(payload);
  return value;
}

bool parse_doc_value(std::string_view value, std::string* id, std::string* payload) {
  if (!codec::get_string(&value, id)) return false;
  payload->assign(value);
  return true;
}

std::string journal_value(char op, uint64_t iid) {
  std::string value(1, op);
  codec::put_u64(&value, iid);
  return value;
}

constexpr std::string_view kCursorPrefix = "cursor/";

std::string u64_value(uint64_t v) {
  std::string value;
  codec::put_u64(&value, v);
  return value;
}

// A random identity a store keeps for life, so its snapshots name it.
std::string new_store_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {  // no entropy: still unique enough per machine
    uint64_t fallback[2] = {uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()),
                            uint64_t(::getpid())};
    std::memcpy(bytes, fallback, sizeof bytes);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

uint64_t directory_bytes(const std::string& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// The names of the RocksDB log files in `db_dir`, sorted; empty if it cannot be listed.
std::vector<std::string> log_files(const std::string& db_dir) {
  std::vector<std::string> logs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(db_dir, ec)) {
    if (entry.path().extension() == ".log") logs.push_back(entry.path().filename().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

// RocksDB 7.8 starts a new log at every open and deletes the previous one
// only after a flush (fixed in RocksDB 8.3): each writable open that writes
// nothing leaves one more empty db/*.log, and an app that opens its store at
// every launch would gather them without end (and open each one at every
// open). An empty log holds nothing to replay, so each one but the live log
// goes. RocksDB does not miss them: it does not track logs in its MANIFEST
// (track_and_verify_wals_in_manifest is off). A read-only open racing this
// sees a log go and takes its view again, as it does after a flush.
void delete_empty_logs(rocksdb::DB* db, const std::string& db_dir) {
  std::unique_ptr<rocksdb::LogFile> live;
  if (!db->GetCurrentWalFile(&live).ok() || live == nullptr) return;
  const std::string live_name = fs::path(live->PathName()).filename().string();
  for (const std::string& name : log_files(db_dir)) {
    std::error_code ec;
    const fs::path log = fs::path(db_dir) / name;
    // Best effort: a log that stays is only a file too many.
    if (name != live_name && fs::file_size(log, ec) == 0 && !ec) fs::remove(log, ec);
  }
}

}  // namespace

const char* MetricName(Metric metric) {
  switch (metric) {
    case Metric::kCosine:
      return "cosine";
    case Metric::kInnerProduct:
      return "ip";
    case Metric::kL2:
      return "l2";
  }
  return "?";
}

Status ParseMetric(std::string_view name, Metric* out) {
  for (Metric m : {Metric::kCosine, Metric::kInnerProduct, Metric::kL2}) {
    if (name == MetricName(m)) {
      *out = m;
      return Status::OK();
    }
  }
  return Status::InvalidArgument("metric '" + std::string(name) + "': expected cosine, ip or l2");
}

Status Store::open(const std::string& path, const Options& options, std::unique_ptr<Store>* out) {
  return StoreImpl::open(path, options, out);
}

StoreImpl::StoreImpl(std::string path, Options options)
    : path_(std::move(path)), options_(std::move(options)) {
  write_options_.sync = options_.sync_writes;
}

StoreImpl::~StoreImpl() {
  if (background_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(background_mu_);
      closing_ = true;
    }
    cancel_background_ = true;
    background_cv_.notify_all();
    background_.join();
  }
  if (db_) {
    // Best effort: a failed snapshot costs a longer replay on the next open.
    // A store whose open failed has no index to snapshot.
    if (index_ && !options_.read_only) flush();
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close();
    db_.reset();
  }
  if (!secondary_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(secondary_dir_, ec);
  }
}

Status StoreImpl::open(const std::string& path, const Options& options, std::unique_ptr<Store>* out) {
  // The file system would see the path up to the NUL and make a store there.
  if (path.empty() || path.find('\0') != std::string::npos) {
    return Status::InvalidArgument("store path must be non-empty and hold no NUL byte");
  }
  const double interval = options.background_retrain.min_interval_seconds;
  if (!(interval >= 0 && interval <= 1e9)) {  // NaN too
    return Status::InvalidArgument("background_retrain.min_interval_seconds must be in [0, 1e9], got " +
                                   std::to_string(interval));
  }
  const int nice = options.background_retrain.nice;
  if (nice < 0 || nice > 19) {
    return Status::InvalidArgument("background_retrain.nice must be in [0, 19], got " + std::to_string(nice));
  }
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (exists && !fs::is_directory(path, ec)) {
    return Status::InvalidArgument(path + ": not a store (it is a file, not a directory)");
  }
  bool has_db = fs::exists(path + "/db/CURRENT", ec);
  if (exists && !has_db && !fs::is_empty(path, ec)) {
    return Status::InvalidArgument(path + ": not a store (a non-empty directory with no database in db/)");
  }
  if (!has_db) {
    if (!options.create_if_missing || options.read_only) return Status::NotFound(path + ": no store here");
    if (options.dim <= 0 || options.dim > kMaxDim) {
      return Status::InvalidArgument(path + ": creating a store needs a dimension in [1, " +
                                     std::to_string(kMaxDim) + "], got " + std::to_string(options.dim));
    }
    std::unique_ptr<VectorIndex> probe;  // reject a bad spec before creating anything
    EMBEDAPT_RETURN_IF_ERROR(VectorIndex::create(options.dim, options.metric, options.index_spec, &probe));
    fs::create_directories(path, ec);
    if (ec) return Status::IOError(path + ": cannot create directory: " + ec.message());
  }
  std::unique_ptr<StoreImpl> store(new StoreImpl(path, options));
  EMBEDAPT_RETURN_IF_ERROR(store->open_db(!has_db));
  EMBEDAPT_RETURN_IF_ERROR(store->load_meta(!has_db));
  EMBEDAPT_RETURN_IF_ERROR(store->load_active_adapter());
  EMBEDAPT_RETURN_IF_ERROR(store->recover_index());
  uint64_t newest_iid = 0;
  EMBEDAPT_RETURN_IF_ERROR(store->load_ids(&newest_iid));
  EMBEDAPT_RETURN_IF_ERROR(store->check_families_agree(newest_iid));
  if (options.background_retrain.after_hits > 0 && !options.read_only) {  // a read-only store logs nothing
    StoreImpl* impl = store.get();
    store->background_ = std::thread([impl] { impl->background_loop(); });
  }
  *out = std::move(store);
  return Status::OK();
}

Status StoreImpl::open_db(bool create) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = create;
  db_options.create_missing_column_families = true;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.keep_log_file_num = 2;
  // One memtable switch, one new log and one MANIFEST record per flush of all
  // the families (a snapshot's), not one each: fewer logs for a read-only
  // open to race (see below).
  db_options.atomic_flush = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const char* name : kColumnFamilyNames) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  rocksdb::DB* db = nullptr;
  if (!options_.read_only) {
    // RocksDB refuses a second writer in this process by the LOCK file's name
    // as spelt: "store/", "./store" or a symlink would open the same files
    // twice, and two writers destroy the database. The canonical spelling
    // makes the second open BUSY.
    std::error_code ec;
    const fs::path dir = fs::canonical(path_, ec);
    if (ec) return Status::IOError(path_ + ": cannot resolve the path: " + ec.message());
    EMBEDAPT_RETURN_IF_ERROR(
        from_rocksdb(rocksdb::DB::Open(db_options, (dir / "db").string(), families, &handles_, &db), path_));
    db_.reset(db);
    delete_empty_logs(db, (dir / "db").string());
    return Status::OK();
  }
  // A secondary instance takes no LOCK and reads the writer's MANIFEST, table
  // files and WAL (replaying the WAL into its own memtables) as of now; it is
  // never caught up, so the view stays at this moment. RocksDB's read-only
  // instance is not used: its header calls it undefined while a writer has
  // the database open. max_open_files = -1 (RocksDB requires it of a
  // secondary) keeps every table file open, so the writer's compactions can
  // delete them without taking them from this view.
  db_options.max_open_files = -1;
  std::string dir = (fs::temp_directory_path() / "embedapt-reader-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) {
    return Status::IOError(dir + ": cannot create a directory for the read-only instance's log");
  }
  secondary_dir_ = dir;
  // Two races with the writer, both retried after a pause that grows:
  // - it may delete a table file between our reading the MANIFEST and opening
  //   the file (a compaction): the open fails with an I/O error, and we open
  //   again;
  // - a flush between our reading the MANIFEST and the logs it names deletes
  //   a log this view still needs, and RocksDB replays the logs left without
  //   a word: the view misses a span of writes (a test saw meta's journal run
  //   40 writes past the vectors). Only a flush deletes a log holding writes
  //   (a writer's open also deletes empty ones: delete_empty_logs), and a
  //   writer always holds one, so a log gone during the open is the sign; catching
  //   up then reads the flush's MANIFEST record, whose table files hold the
  //   missing writes, and is short enough to finish between flushes.
  // A third is retried too: the writer may switch to a new MANIFEST and
  // delete the one CURRENT named when we read it (RocksDB's TryAgain).
  constexpr int kAttempts = 20;
  const std::string db_dir = path_ + "/db";
  auto close_db = [&] {
    for (auto* handle : handles_) db->DestroyColumnFamilyHandle(handle);
    handles_.clear();
    delete db;
    db = nullptr;
  };
  rocksdb::Status s;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(attempt));
    const std::vector<std::string> logs_before = log_files(db_dir);
    s = db == nullptr
            ? rocksdb::DB::OpenAsSecondary(db_options, db_dir, secondary_dir_, families, &handles_, &db)
            : db->TryCatchUpWithPrimary();
    if (!s.ok()) {
      if (db != nullptr) close_db();
      if (s.IsIOError() || s.IsPathNotFound() || s.IsTryAgain()) continue;
      break;
    }
    const std::vector<std::string> logs_after = log_files(db_dir);
    if (std::includes(logs_after.begin(), logs_after.end(), logs_before.begin(), logs_before.end())) {
      db_.reset(db);
      return Status::OK();
    }
  }
  if (db == nullptr && s.IsTryAgain()) {
    // Not a race after all: CURRENT names a MANIFEST that is not there.
    std::string current;
    if (!read_file(db_dir + "/CURRENT", &current).ok()) current.clear();
    while (!current.empty() && (current.back() == '\n' || current.back() == '\r')) current.pop_back();
    return Status::Corruption(db_dir + "/CURRENT names the MANIFEST '" + quotable(current, 64) +
                              "', which is not in " + db_dir);
  }
  if (db == nullptr) return from_rocksdb(s, path_ + ": opening read-only");
  close_db();  // open, but the last attempt's view had lost a log too
  return Status::Busy(path_ + ": opening read-only: the writer flushed during each of " +
                      std::to_string(kAttempts) + " attempts to take a consistent view; try again");
}

Status StoreImpl::get_u64(const std::string& key, uint64_t* v, uint64_t fallback) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kMeta), key, &value);
  if (s.IsNotFound()) {
    *v = fallback;
    return Status::OK();
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": meta " + key));
  std::string_view in(value);
  if (!codec::get_u64(&in, v)) return Status::Corruption(path_ + ": meta " + key + " is not a number");
  return Status::OK();
}

Status StoreImpl::load_meta(bool create) {
  rocksdb::ReadOptions read;
  if (create) {
    rocksdb::WriteBatch batch;
    batch.Put(cf(kMeta), "format", kFormat);
    batch.Put(cf(kMeta), "dim", u64_value(options_.dim));
    batch.Put(cf(kMeta), "metric", MetricName(options_.metric));
    batch.Put(cf(kMeta), "index_spec", options_.index_spec);
    store_id_ = new_store_id();
    batch.Put(cf(kMeta), "store_id", store_id_);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    return from_rocksdb(db_->Write(sync, &batch), path_ + ": writing meta");
  }
  std::string format, metric, spec;
  rocksdb::Status s = db_->Get(read, cf(kMeta), "format", &format);
  if (s.IsNotFound() || format != kFormat) {
    return Status::InvalidArgument(path_ + ": not an embedapt store (RocksDB without our format marker)");
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": meta format"));
  uint64_t dim = 0;
  EMBEDAPT_RETURN_IF_ERROR(get_u64("dim", &dim, 0));
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Get(read, cf(kMeta), "metric", &metric), path_ + ": meta metric"));
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Get(read, cf(kMeta), "index_spec", &spec), path_ + ": meta index_spec"));
  Metric stored_metric;
  if (dim == 0 || dim > uint64_t(kMaxDim) || !ParseMetric(metric, &stored_metric).ok()) {
    return Status::Corruption(path_ + ": meta holds dim " + std::to_string(dim) + ", metric '" + metric +
                              "'");
  }
  // Options left at their defaults mean "as stored".
  const Options defaults;
  if (options_.dim != 0 && options_.dim != int(dim)) {
    return Status::InvalidArgument(path_ + ": store has dim " + std::to_string(dim) + ", options ask for " +
                                   std::to_string(options_.dim));
  }
  if (options_.metric != defaults.metric && options_.metric != stored_metric) {
    return Status::InvalidArgument(path_ + ": store uses metric " + metric + ", options ask for " +
                                   MetricName(options_.metric));
  }
  if (options_.index_spec != defaults.index_spec && options_.index_spec != spec) {
    return Status::InvalidArgument(path_ + ": store uses index '" + spec + "', options ask for '" +
                                   options_.index_spec + "'");
  }
  options_.dim = int(dim);
  options_.metric = stored_metric;
  options_.index_spec = spec;

  EMBEDAPT_RETURN_IF_ERROR(get_u64("next_iid", &next_iid_, 1));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("journal_seq", &journal_seq_, 0));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("next_adapter", &next_adapter_, 1));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("next_query", &next_query_, 1));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("next_hit", &next_hit_, 1));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("hit_count", &hit_count_, 0));
  // Stores from before query eviction never deleted a query.
  EMBEDAPT_RETURN_IF_ERROR(get_u64("query_count", &query_count_, next_query_ - 1));
  EMBEDAPT_RETURN_IF_ERROR(get_u64("active_adapter", &active_version_, 0));
  std::string history;
  s = db_->Get(read, cf(kMeta), "adapter_history", &history);
  if (s.ok()) {
    std::string_view in(history);
    for (uint64_t v; codec::get_u64(&in, &v);) adapter_history_.push_back(v);
  }
  s = db_->Get(read, cf(kMeta), "embedder", &embedder_);
  if (!s.ok() && !s.IsNotFound()) return from_rocksdb(s, path_ + ": meta embedder");
  s = db_->Get(read, cf(kMeta), "store_id", &store_id_);
  if (s.IsNotFound()) {  // a store made before snapshots named their store
    store_id_ = new_store_id();
    if (!options_.read_only) {  // else it cannot be recorded: this open rebuilds its index
      rocksdb::WriteOptions sync;
      sync.sync = true;
      s = db_->Put(sync, cf(kMeta), "store_id", store_id_);
    } else {
      s = rocksdb::Status::OK();
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": meta store_id"));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, cf(kMeta)));
  for (it->Seek(kCursorPrefix); it->Valid() && it->key().starts_with(kCursorPrefix); it->Next()) {
    std::string_view value(it->value().data(), it->value().size());
    uint64_t seq = 0;
    if (!codec::get_u64(&value, &seq))
      return Status::Corruption(path_ + ": malformed " + it->key().ToString());
    cursors_[it->key().ToString().substr(kCursorPrefix.size())] = seq;
  }
  return from_rocksdb(it->status(), path_ + ": reading cursors");
}

Status StoreImpl::check_writable(const char* what) const {
  if (!options_.read_only) return Status::OK();
  return Status::FailedPrecondition(path_ + ": " + what +
                                    " refused: the store was opened read-only (Options::read_only)");
}

namespace {

// FAISS scores in float: a vector whose squared norm passes a quarter of the
// largest float makes inf of an L2 distance (the squares of a difference can
// be four times one vector's), and k-means then aborts on it; under cosine a
// norm whose square is below the smallest normal float has no scale to unit
// length in float (1e-45 became inf and NaN, and the vector vanished from
// every search or stopped an IVF training for good).
constexpr double kMaxSquares = std::numeric_limits<float>::max() / 4;
constexpr double kMinCosineSquares = std::numeric_limits<float>::min();

// Empty, or why a vector of these `squares` (its sum_of_squares, finite)
// cannot be indexed or searched.
std::string magnitude_problem(double squares, bool cosine) {
  if (squares > kMaxSquares) {
    return fmt::format("norm {:.3g} is too large for float arithmetic (at most {:.3g})", std::sqrt(squares),
                       std::sqrt(kMaxSquares));
  }
  if (cosine && squares == 0) return "norm is 0: no direction under the cosine metric";
  if (cosine && squares < kMinCosineSquares) {
    return fmt::format(
        "norm {:.3g} is too small to scale to unit length in float arithmetic (at least {:.3g})",
        std::sqrt(squares), std::sqrt(kMinCosineSquares));
  }
  return "";
}

}  // namespace

Status StoreImpl::validate_vector(const float* v, size_t dim, double* squares) const {
  if (v == nullptr || dim != size_t(options_.dim)) {
    return Status::InvalidArgument("vector has dimension " + std::to_string(v ? dim : 0) +
                                   ", the store's is " + std::to_string(options_.dim));
  }
  // Every search checks its queries: finiteness comes from the sum of squares
  // (no branch per component), and only a failure looks for the culprit.
  const double norm = sum_of_squares(v, dim);
  if (squares != nullptr) *squares = norm;
  if (!std::isfinite(norm)) {
    const size_t bad = size_t(std::find_if(v, v + dim, [](float x) { return !std::isfinite(x); }) - v);
    return Status::InvalidArgument("vector component " + std::to_string(bad) + " is not finite");
  }
  const std::string problem = magnitude_problem(norm, options_.metric == Metric::kCosine);
  if (!problem.empty()) return Status::InvalidArgument("vector's " + problem);
  return Status::OK();
}

Status StoreImpl::to_index_space(const Adapter* adapter, const float* raw, size_t n, std::vector<float>* out,
                                 const double* raw_squares) const {
  const size_t dim = options_.dim;
  const bool cosine = options_.metric == Metric::kCosine;
  out->resize(n * dim);
  if (adapter != nullptr) {
    EMBEDAPT_RETURN_IF_ERROR(adapter->apply(raw, n, out->data()).WithContext("applying adapter"));
    // An adapter may map a valid vector to one the index cannot take (an
    // all-zero row made NaN scores, or no hits at all).
    for (size_t i = 0; i < n; ++i) {
      float* v = out->data() + i * dim;
      const double squares = sum_of_squares(v, dim);
      const std::string problem = magnitude_problem(squares, cosine);
      if (!problem.empty()) {
        return Status::InvalidArgument("applying adapter: row " + std::to_string(i) +
                                       " maps to a vector whose " + problem);
      }
      if (cosine) normalise_vector(v, dim, squares, v);
    }
    return Status::OK();
  }
  if (!cosine) {
    std::copy(raw, raw + n * dim, out->begin());
    return Status::OK();
  }
  // Normalised as copied: one pass, and no second sum where the check's is known.
  for (size_t i = 0; i < n; ++i) {
    const float* v = raw + i * dim;
    normalise_vector(v, dim, raw_squares != nullptr ? raw_squares[i] : sum_of_squares(v, dim),
                     out->data() + i * dim);
  }
  return Status::OK();
}

Status StoreImpl::build_index(const Adapter* doc_adapter, std::unique_ptr<VectorIndex>* out) const {
  std::unique_ptr<VectorIndex> index;
  EMBEDAPT_RETURN_IF_ERROR(VectorIndex::create(options_.dim, options_.metric, options_.index_spec, &index));
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kVectors)));
  std::vector<float> raw, mapped;
  std::vector<int64_t> ids;
  auto add_chunk = [&]() -> Status {
    EMBEDAPT_RETURN_IF_ERROR(to_index_space(doc_adapter, raw.data(), ids.size(), &mapped));
    EMBEDAPT_RETURN_IF_ERROR(index->add(ids.size(), mapped.data(), ids.data()));
    raw.clear();
    ids.clear();
    return Status::OK();
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t iid = 0;
    std::string_view value(it->value().data(), it->value().size());
    if (!codec::parse_key_u64({it->key().data(), it->key().size()}, &iid) ||
        value.size() != size_t(options_.dim) * sizeof(float)) {
      return Status::Corruption(path_ + ": vectors entry " + std::to_string(iid) + " is malformed");
    }
    const float* v = reinterpret_cast<const float*>(value.data());
    raw.insert(raw.end(), v, v + options_.dim);
    ids.push_back(static_cast<int64_t>(iid));
    if (ids.size() == kRebuildChunk) EMBEDAPT_RETURN_IF_ERROR(add_chunk());
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning vectors"));
  if (!ids.empty()) EMBEDAPT_RETURN_IF_ERROR(add_chunk());
  *out = std::move(index);
  return Status::OK();
}

// Loads the snapshot and replays the journal after it; falls back to a full
// rebuild from the vectors whenever the snapshot cannot be trusted.
Status StoreImpl::recover_index() {
  const uint64_t doc_adapter = doc_adapter_version_;
  const Adapter* doc = doc_adapter ? active_.get() : nullptr;
  SnapshotInfo info;
  std::string file;
  std::string_view payload;
  Status s = read_snapshot(snapshot_path(), &info, &file, &payload);
  std::unique_ptr<VectorIndex> index;
  if (s.ok() && info.store_id != store_id_) {
    s = Status::FailedPrecondition("snapshot belongs to another store");
  } else if (s.ok() && info.seq > journal_seq_) {
    s = Status::Corruption("snapshot covers seq " + std::to_string(info.seq) + " beyond the journal's " +
                           std::to_string(journal_seq_));
  } else if (s.ok() && info.doc_adapter != doc_adapter) {
    s = Status::FailedPrecondition("snapshot was built under adapter " + std::to_string(info.doc_adapter));
  }
  if (s.ok() && info.seq < journal_seq_) {
    // The journal is trimmed up to each new snapshot, so an older snapshot
    // (restored from a backup, say) would skip the writes trimmed since.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kJournal)));
    it->Seek(codec::key_u64(info.seq + 1));
    uint64_t first = 0;
    if (!it->Valid() || !codec::parse_key_u64({it->key().data(), it->key().size()}, &first) ||
        first != info.seq + 1) {
      s = Status::FailedPrecondition(
          "snapshot at seq " + std::to_string(info.seq) + " is older than the journal, which resumes at " +
          (it->Valid() ? std::to_string(first) : "seq " + std::to_string(journal_seq_ + 1)));
    }
  }
  if (s.ok())
    s = VectorIndex::deserialize(payload, options_.dim, options_.metric, options_.index_spec, &index);
  payload = {};
  file = std::string();  // the index has its own copy now

  if (s.ok()) {
    // Net effect of the journal suffix: an iid added then removed after the
    // snapshot never reaches the index.
    std::vector<uint64_t> added;
    std::unordered_set<uint64_t> removed_new;
    std::vector<uint64_t> removed_old;
    std::unordered_set<uint64_t> added_set;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kJournal)));
    uint64_t replayed = 0;
    for (it->Seek(codec::key_u64(info.seq + 1)); it->Valid(); it->Next(), ++replayed) {
      std::string_view value(it->value().data(), it->value().size());
      uint64_t iid = 0;
      value.remove_prefix(value.empty() ? 0 : 1);
      if (it->value().size() != 9 || !codec::get_u64(&value, &iid)) {
        return Status::Corruption(path_ + ": malformed journal entry");
      }
      if (it->value()[0] == 'a') {
        added.push_back(iid);
        added_set.insert(iid);
      } else if (added_set.count(iid)) {
        removed_new.insert(iid);
      } else {
        removed_old.push_back(iid);
      }
    }
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": reading the journal"));
    for (uint64_t iid : removed_old) index->remove(static_cast<int64_t>(iid));
    std::vector<float> raw, mapped;
    std::vector<int64_t> ids;
    for (uint64_t iid : added) {
      if (removed_new.count(iid)) continue;
      std::string value;
      EMBEDAPT_RETURN_IF_ERROR(
          from_rocksdb(db_->Get(rocksdb::ReadOptions(), cf(kVectors), codec::key_u64(iid), &value),
                       path_ + ": journaled vector " + std::to_string(iid)));
      if (value.size() != size_t(options_.dim) * sizeof(float)) {
        return Status::Corruption(path_ + ": vector " + std::to_string(iid) + " has the wrong size");
      }
      const float* v = reinterpret_cast<const float*>(value.data());
      raw.insert(raw.end(), v, v + options_.dim);
      ids.push_back(static_cast<int64_t>(iid));
    }
    EMBEDAPT_RETURN_IF_ERROR(to_index_space(doc, raw.data(), ids.size(), &mapped));
    EMBEDAPT_RETURN_IF_ERROR(index->add(ids.size(), mapped.data(), ids.data()));
    snapshot_seq_ = info.seq;
    recovery_ = "snapshot at seq " + std::to_string(info.seq) + " + " + std::to_string(replayed) +
                " journal entries replayed";
    index_ = std::move(index);
    return Status::OK();
  }

  EMBEDAPT_RETURN_IF_ERROR(build_index(doc, &index));
  index_ = std::move(index);
  recovery_ = "rebuilt from RocksDB (" + s.message() + ")";
  // Nothing to persist for a new store or one never snapshotted; a read-only
  // open writes nothing (the writer snapshots on its own schedule).
  if (s.code() == Code::kNotFound || options_.read_only) return Status::OK();
  std::lock_guard<std::mutex> lock(write_mu_);
  return snapshot_locked();
}

// Each write puts a record in every family at once, so the families agree
// on what is stored. They disagree when RocksDB serves a family as it was
// before a table file that has gone missing or been cut short: a writable
// open refuses such a database, but a read-only one (a secondary instance)
// opened without a word, and searches named no hits, or get() found no
// record that a search had returned.
Status StoreImpl::check_families_agree(uint64_t newest_iid) const {
  const size_t named = ids_by_iid_.size(), indexed = index_->live_count();
  std::string problem;
  if (named != indexed) {
    problem = std::to_string(named) + " record ids against " + std::to_string(indexed) + " indexed records";
  }
  std::string value;
  for (ColumnFamily family : {kDocs, kVectors}) {
    if (!problem.empty() || newest_iid == 0) break;
    const rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), cf(family), codec::key_u64(newest_iid), &value);
    if (s.IsNotFound()) {
      problem = "the newest record, " + std::to_string(newest_iid) + ", has no " +
                (family == kDocs ? "document" : "vector");
    } else {
      EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": reading the newest record"));
    }
  }
  if (problem.empty()) return Status::OK();
  return Status::Corruption(path_ + ": RocksDB's tables disagree (" + problem + "): a table file in " +
                            path_ + "/db is missing or damaged");
}

Status StoreImpl::load_ids(uint64_t* newest_iid) {
  IdNames ids;
  uint64_t newest = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kIds)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t iid = 0;
    if (!codec::parse_key_u64({it->value().data(), it->value().size()}, &iid)) {
      return Status::Corruption(path_ + ": ids entry for '" + it->key().ToString() + "' is malformed");
    }
    ids.set(static_cast<int64_t>(iid), it->key().ToString());
    newest = std::max(newest, iid);
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning ids"));
  if (newest_iid != nullptr) *newest_iid = newest;
  std::unique_lock<std::shared_mutex> exclusive(mu_);
  ids_by_iid_ = std::move(ids);
  return Status::OK();
}

Status StoreImpl::upsert(std::string_view id, const float* vector, size_t dim, std::string_view payload) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("upsert"));
  EMBEDAPT_RETURN_IF_ERROR(
      validate_vector(vector, dim).WithContext("upsert '" + std::string(id.substr(0, 64)) + "'"));
  std::vector<Record> records(1);
  records[0].id = id;
  records[0].vector.assign(vector, vector + dim);
  records[0].payload = payload;
  return upsert_batch(records);
}

Status StoreImpl::upsert_batch(const std::vector<Record>& records) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("upsert"));
  std::vector<nlohmann::json> metadata(records.size(), nlohmann::json::object());
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    std::string what = "record " + std::to_string(i) + " ('" + r.id.substr(0, 64) + "')";
    if (r.id.empty() || r.id.size() > kMaxIdBytes) {
      return Status::InvalidArgument(what + ": id must be 1.." + std::to_string(kMaxIdBytes) +
                                     " bytes, got " + std::to_string(r.id.size()));
    }
    if (r.payload.size() > kMaxPayloadBytes) {
      return Status::InvalidArgument(what + ": payload of " + std::to_string(r.payload.size()) +
                                     " bytes exceeds " + std::to_string(kMaxPayloadBytes));
    }
    EMBEDAPT_RETURN_IF_ERROR(validate_vector(r.vector.data(), r.vector.size()).WithContext(what));
    if (!r.metadata.empty()) EMBEDAPT_RETURN_IF_ERROR(ParseMetadata(r.metadata, what, &metadata[i]));
  }
  if (records.empty()) return Status::OK();

  std::lock_guard<std::mutex> lock(write_mu_);
  EMBEDAPT_RETURN_IF_ERROR(rebuild_if_stale_locked());
  rocksdb::WriteBatch batch;
  uint64_t next_iid = next_iid_, seq = journal_seq_;
  std::unordered_map<std::string_view, uint64_t> in_batch;             // id -> iid assigned in this batch
  std::unordered_map<uint64_t, const nlohmann::json*> batch_metadata;  // iid -> its metadata, this batch
  std::vector<int64_t> add_ids, remove_ids;
  std::vector<float> raw;
  raw.reserve(records.size() * options_.dim);
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    uint64_t old = 0;
    if (auto found = in_batch.find(r.id); found != in_batch.end()) {
      old = found->second;
    } else {
      std::string value;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kIds), r.id, &value);
      if (s.ok() && !codec::parse_key_u64(value, &old)) {
        return Status::Corruption(path_ + ": ids entry for '" + r.id + "' is malformed");
      }
      if (!s.ok() && !s.IsNotFound()) return from_rocksdb(s, path_ + ": looking up '" + r.id + "'");
    }
    if (old != 0) {
      auto known = batch_metadata.find(old);
      EMBEDAPT_RETURN_IF_ERROR(
          delete_record(old, known == batch_metadata.end() ? nullptr : known->second, &batch, &seq));
      remove_ids.push_back(static_cast<int64_t>(old));
    }
    uint64_t iid = next_iid++;
    batch.Put(
        cf(kVectors), codec::key_u64(iid),
        rocksdb::Slice(reinterpret_cast<const char*>(r.vector.data()), r.vector.size() * sizeof(float)));
    batch.Put(cf(kDocs), codec::key_u64(iid), doc_value(r.id, r.payload));
    batch.Put(cf(kIds), r.id, codec::key_u64(iid));
    batch.Put(cf(kJournal), codec::key_u64(++seq), journal_value('a', iid));
    if (!metadata[i].empty()) {
      batch.Put(cf(kMetadata), codec::key_u64(iid), metadata[i].dump());
      for (const std::string& key : metadata_index::keys(metadata[i], iid))
        batch.Put(cf(kMetadataIndex), key, "");
    }
    batch_metadata[iid] = &metadata[i];
    in_batch[r.id] = iid;
    add_ids.push_back(static_cast<int64_t>(iid));
    raw.insert(raw.end(), r.vector.begin(), r.vector.end());
  }
  batch.Put(cf(kMeta), "next_iid", u64_value(next_iid));
  batch.Put(cf(kMeta), "journal_seq", u64_value(seq));

  std::vector<float> mapped;
  {
    std::shared_lock<std::shared_mutex> read(mu_);  // active_ changes only under write_mu_, held here
    EMBEDAPT_RETURN_IF_ERROR(
        to_index_space(doc_adapter_version_ ? active_.get() : nullptr, raw.data(), add_ids.size(), &mapped));
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(write_options_, &batch), path_ + ": writing batch"));
  next_iid_ = next_iid;
  journal_seq_ = seq;

  // An iid both added and replaced within this batch never enters the index.
  std::unordered_set<int64_t> added(add_ids.begin(), add_ids.end());
  std::vector<float> keep_vectors;
  std::vector<int64_t> keep_ids;
  std::unordered_set<int64_t> dropped;
  for (int64_t old : remove_ids) {
    if (added.count(old)) dropped.insert(old);
  }
  for (size_t i = 0; i < add_ids.size(); ++i) {
    if (dropped.count(add_ids[i])) continue;
    keep_ids.push_back(add_ids[i]);
    keep_vectors.insert(keep_vectors.end(), mapped.begin() + i * options_.dim,
                        mapped.begin() + (i + 1) * options_.dim);
  }
  return apply_committed_locked([&](VectorIndex* index) {
    for (int64_t old : remove_ids) {
      if (!dropped.count(old)) index->remove(old);
      ids_by_iid_.erase(old);
    }
    for (const auto& [id, iid] : in_batch)
      ids_by_iid_.set(static_cast<int64_t>(iid), std::string(id));  // the batch's last
    return index->add(keep_ids.size(), keep_vectors.data(), keep_ids.data());
  });
}

Status StoreImpl::remove(std::string_view id) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("remove"));
  std::lock_guard<std::mutex> lock(write_mu_);
  EMBEDAPT_RETURN_IF_ERROR(rebuild_if_stale_locked());
  std::string value;
  uint64_t iid = 0;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kIds), id, &value);
  if (s.IsNotFound()) return Status::NotFound("remove: no record with id '" + std::string(id) + "'");
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": looking up '" + std::string(id) + "'"));
  if (!codec::parse_key_u64(value, &iid)) {
    return Status::Corruption(path_ + ": ids entry for '" + std::string(id) + "' is malformed");
  }
  rocksdb::WriteBatch batch;
  uint64_t seq = journal_seq_;
  batch.Delete(cf(kIds), id);
  EMBEDAPT_RETURN_IF_ERROR(delete_record(iid, nullptr, &batch, &seq));
  batch.Put(cf(kMeta), "journal_seq", u64_value(seq));
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(write_options_, &batch), path_ + ": writing remove"));
  journal_seq_ = seq;
  return apply_committed_locked([&](VectorIndex* index) {
    index->remove(static_cast<int64_t>(iid));
    ids_by_iid_.erase(static_cast<int64_t>(iid));
    return Status::OK();
  });
}

// Past the commit point RocksDB holds the write, so a failure to mirror it in
// the index (any exception: FAISS, std::bad_alloc) must not leave the two out
// of step: the index is marked stale, searches and snapshots refuse it, and it
// is rebuilt from RocksDB at once or, failing that, before the next write.
Status StoreImpl::apply_committed_locked(const std::function<Status(VectorIndex*)>& mutate) {
  Status applied;
  {
    std::unique_lock<std::shared_mutex> exclusive(mu_);
    try {
      applied = mutate(index_.get());
    } catch (const std::exception& e) {
      applied = Status::Internal(std::string("updating the index: ") + faiss_message(e));
    }
    if (!applied.ok()) index_stale_ = true;
  }
  if (!applied.ok()) {
    Status rebuilt = rebuild_if_stale_locked();
    if (!rebuilt.ok()) {
      return Status::Internal(path_ +
                              ": the write is durable in RocksDB, but applying it to the index failed (" +
                              applied.message() + ") and so did rebuilding the index (" + rebuilt.message() +
                              "); searches fail until a later write, flush or reopen rebuilds it");
    }
  }
  return after_mutation_locked();
}

Status StoreImpl::remove_matching(const Filter& filter, uint64_t* removed) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("remove_matching"));
  std::lock_guard<std::mutex> lock(write_mu_);
  EMBEDAPT_RETURN_IF_ERROR(rebuild_if_stale_locked());
  IdSet matched;
  EMBEDAPT_RETURN_IF_ERROR(match(filter, rocksdb::ReadOptions(), &matched));
  std::vector<uint64_t> iids;
  if (matched.complement) {  // every record but the listed ones
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kVectors)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      uint64_t iid = 0;
      codec::parse_key_u64({it->key().data(), it->key().size()}, &iid);
      if (!std::binary_search(matched.ids.begin(), matched.ids.end(), static_cast<int64_t>(iid))) {
        iids.push_back(iid);
      }
    }
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning vectors"));
  } else {
    iids.assign(matched.ids.begin(), matched.ids.end());
  }
  rocksdb::WriteBatch batch;
  uint64_t seq = journal_seq_;
  std::string doc, id, payload;
  for (uint64_t iid : iids) {
    EMBEDAPT_RETURN_IF_ERROR(
        from_rocksdb(db_->Get(rocksdb::ReadOptions(), cf(kDocs), codec::key_u64(iid), &doc),
                     path_ + ": reading record " + std::to_string(iid) + " to remove"));
    if (!parse_doc_value(doc, &id, &payload)) {
      return Status::Corruption(path_ + ": docs entry " + std::to_string(iid) + " is malformed");
    }
    batch.Delete(cf(kIds), id);
    EMBEDAPT_RETURN_IF_ERROR(delete_record(iid, nullptr, &batch, &seq));
  }
  if (removed != nullptr) *removed = iids.size();
  if (iids.empty()) return Status::OK();
  batch.Put(cf(kMeta), "journal_seq", u64_value(seq));
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(write_options_, &batch), path_ + ": writing remove"));
  journal_seq_ = seq;
  return apply_committed_locked([&](VectorIndex* index) {
    for (uint64_t iid : iids) {
      index->remove(static_cast<int64_t>(iid));
      ids_by_iid_.erase(static_cast<int64_t>(iid));
    }
    return Status::OK();
  });
}

Status StoreImpl::delete_record(uint64_t iid, const nlohmann::json* metadata, rocksdb::WriteBatch* batch,
                                uint64_t* seq) const {
  const std::string key = codec::key_u64(iid);
  nlohmann::json stored;
  if (metadata == nullptr) {
    std::string text;
    EMBEDAPT_RETURN_IF_ERROR(read_metadata(rocksdb::ReadOptions(), key, &text));
    if (!text.empty()) {
      Status s = ParseMetadata(text, "record " + std::to_string(iid), &stored);
      if (!s.ok()) return Status::Corruption(path_ + ": stored " + s.message());
    }
    metadata = &stored;
  }
  if (!metadata->empty()) {
    for (const std::string& index_key : metadata_index::keys(*metadata, iid)) {
      batch->Delete(cf(kMetadataIndex), index_key);
    }
    batch->Delete(cf(kMetadata), key);
  }
  batch->Delete(cf(kVectors), key);
  batch->Delete(cf(kDocs), key);
  batch->Put(cf(kJournal), codec::key_u64(++*seq), journal_value('r', iid));
  return Status::OK();
}

Status StoreImpl::read_metadata(const rocksdb::ReadOptions& read, const std::string& iid_key,
                                std::string* out) const {
  rocksdb::Status s = db_->Get(read, cf(kMetadata), iid_key, out);
  if (s.IsNotFound()) {
    out->clear();
    return Status::OK();
  }
  return from_rocksdb(s, path_ + ": reading metadata");
}

Status StoreImpl::match(const Filter& filter, const rocksdb::ReadOptions& read, IdSet* out) const {
  if (filter.matches_all()) {
    *out = IdSet{{}, /*complement=*/true};
    return Status::OK();
  }
  return metadata_index::evaluate(*filter.root(), db_.get(), cf(kMetadataIndex), read, out);
}

Status StoreImpl::rebuild_if_stale_locked() {
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    if (!index_stale_) return Status::OK();
  }
  std::unique_ptr<VectorIndex> rebuilt;
  Status s;
  try {
    s = build_index(doc_adapter_version_ ? active_.get() : nullptr, &rebuilt);
  } catch (const std::exception& e) {
    s = Status::Internal(std::string("rebuilding the index: ") + faiss_message(e));
  }
  EMBEDAPT_RETURN_IF_ERROR(s);
  EMBEDAPT_RETURN_IF_ERROR(load_ids());  // the failed update may have reached the ids in part
  std::unique_lock<std::shared_mutex> exclusive(mu_);
  index_ = std::move(rebuilt);
  index_stale_ = false;
  return Status::OK();
}

// Clears tombstones once they are a quarter of the index (searches over-fetch
// past them, so they cost time), then snapshots on schedule.
Status StoreImpl::after_mutation_locked() {
  size_t tombstones, live;
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    tombstones = index_->tombstone_count();
    live = index_->live_count();
  }
  if (tombstones * 4 > live + 256) {
    Status purged;
    {
      std::unique_lock<std::shared_mutex> exclusive(mu_);
      purged = index_->purge();
    }
    if (purged.code() == Code::kNotSupported) {  // rebuild while searches go on; writers wait on write_mu_
      std::unique_ptr<VectorIndex> rebuilt;
      EMBEDAPT_RETURN_IF_ERROR(build_index(doc_adapter_version_ ? active_.get() : nullptr, &rebuilt));
      std::unique_lock<std::shared_mutex> exclusive(mu_);
      index_ = std::move(rebuilt);
    } else {
      EMBEDAPT_RETURN_IF_ERROR(purged);
    }
  }
  if (options_.snapshot_every > 0 && journal_seq_ - snapshot_seq_ >= options_.snapshot_every) {
    return snapshot_locked();
  }
  return Status::OK();
}

// Persists the index at journal_seq_, then trims the journal it covers. The
// WAL is synced first so RocksDB never holds less than the snapshot covers.
Status StoreImpl::snapshot_locked() {
  EMBEDAPT_RETURN_IF_ERROR(rebuild_if_stale_locked());  // never snapshot what RocksDB does not hold
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->FlushWAL(/*sync=*/true), path_ + ": syncing the log"));
  std::string payload;
  SnapshotInfo info;
  info.seq = journal_seq_;
  info.store_id = store_id_;
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    info.doc_adapter = doc_adapter_version_;
    EMBEDAPT_RETURN_IF_ERROR(index_->serialize(&payload));
  }
  EMBEDAPT_RETURN_IF_ERROR(write_snapshot(snapshot_path(), info, payload));
  snapshot_seq_ = info.seq;
  uint64_t trim_to = info.seq;
  for (const auto& [name, seq] : cursors_) trim_to = std::min(trim_to, seq);
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(
      db_->DeleteRange(write_options_, cf(kJournal), codec::key_u64(0), codec::key_u64(trim_to + 1)),
      path_ + ": trimming the journal"));
  return flush_memtables_locked();
}

// RocksDB keeps a log file until every column family with writes in it has
// written them to a table file, and the small families (meta, journal) fill
// their memtables slowly: without this, a 100k-record store kept its whole
// ingest in the log (170 MB) and every open, read-only ones too, replayed it.
Status StoreImpl::flush_memtables_locked() {
  return from_rocksdb(db_->Flush(rocksdb::FlushOptions(), handles_), path_ + ": flushing the memtables");
}

Status StoreImpl::flush() {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("flush"));
  std::lock_guard<std::mutex> lock(write_mu_);
  if (journal_seq_ == snapshot_seq_ && std::filesystem::exists(snapshot_path())) {
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->FlushWAL(/*sync=*/true), path_ + ": syncing the log"));
    return flush_memtables_locked();
  }
  return snapshot_locked();
}

Status StoreImpl::sync() {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("sync"));
  std::lock_guard<std::mutex> lock(write_mu_);
  return from_rocksdb(db_->FlushWAL(/*sync=*/true), path_ + ": syncing the log");
}

Status StoreImpl::get(std::string_view id, Record* out) const {
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read.snapshot = snapshot;
  std::string iid_key, doc, vector;
  rocksdb::Status s = db_->Get(read, cf(kIds), id, &iid_key);
  if (s.ok()) s = db_->Get(read, cf(kDocs), iid_key, &doc);
  if (s.ok()) s = db_->Get(read, cf(kVectors), iid_key, &vector);
  Status metadata = s.ok() ? read_metadata(read, iid_key, &out->metadata) : Status::OK();
  db_->ReleaseSnapshot(snapshot);
  EMBEDAPT_RETURN_IF_ERROR(metadata);
  if (s.IsNotFound()) return Status::NotFound("get: no record with id '" + std::string(id) + "'");
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": reading '" + std::string(id) + "'"));
  if (!parse_doc_value(doc, &out->id, &out->payload) || vector.size() % sizeof(float) != 0) {
    return Status::Corruption(path_ + ": record '" + std::string(id) + "' is malformed");
  }
  out->vector.resize(vector.size() / sizeof(float));
  std::memcpy(out->vector.data(), vector.data(), vector.size());
  codec::parse_key_u64(iid_key, &out->version);
  return Status::OK();
}

Status StoreImpl::search(const float* query, size_t dim, const SearchOptions& options,
                         std::vector<Hit>* hits) const {
  if (dim != size_t(options_.dim)) return validate_vector(query, dim).WithContext("search");
  // The caller's Hits are reused in place, as search_batch reuses its results.
  std::vector<std::vector<Hit>> results(1);
  results[0].swap(*hits);
  Status searched = search_with(SearchTarget(), query, 1, options, &results);
  hits->swap(results[0]);
  return searched;
}

Status StoreImpl::search_batch(const float* queries, size_t n, const SearchOptions& options,
                               std::vector<std::vector<Hit>>* results) const {
  return search_with(SearchTarget(), queries, n, options, results);
}

Status StoreImpl::search_with(const SearchTarget& target, const float* queries, size_t n,
                              const SearchOptions& options, std::vector<std::vector<Hit>>* results) const {
  const int k = options.k;
  if (k <= 0) return Status::InvalidArgument("search: k must be positive, got " + std::to_string(k));
  std::vector<double> squares(n);
  for (size_t i = 0; i < n; ++i) {
    const Status valid = validate_vector(queries + i * options_.dim, options_.dim, &squares[i]);
    if (!valid.ok()) return valid.WithContext("search query " + std::to_string(i));
  }
  IdSet allowed;
  const bool filtered = !options.filter.matches_all();
  if (filtered) EMBEDAPT_RETURN_IF_ERROR(match(options.filter, rocksdb::ReadOptions(), &allowed));
  // The queries as the index takes them, where they are copied (an adapter's
  // output, or normalised for an index whose scores do not scale with the
  // query; see below), in a buffer each thread keeps: glibc merges its fast
  // bins before serving any request of 1 KB or more, and a one-query search
  // allocating its 1.5 KB here (384 dimensions) spent about a tenth of the
  // store's own time around an IVF1024 search at nprobe 1 on that (0.2 of
  // 2.4 us, timed in a scratch driver when every search copied).
  thread_local std::vector<float> mapped;
  std::vector<std::vector<Neighbor>> neighbors;
  std::shared_lock<std::shared_mutex> read(mu_, std::defer_lock);
  const VectorIndex* index = target.index;
  const Adapter* query_adapter = target.query_adapter;
  if (index == nullptr || target.active_adapter) read.lock();
  if (index == nullptr && !target.active_adapter && doc_adapter_version_ != target.live_doc_version) {
    return Status::FailedPrecondition(
        "search view: an adapter activated since the view was made rebuilt the live index for another "
        "document side; make a new view");
  }
  if (index == nullptr && index_stale_) {
    return Status::Unavailable(path_ + ": the index is being rebuilt from RocksDB after a failed update");
  }
  if (index == nullptr) index = index_.get();
  if (target.active_adapter) {
    if (!active_error_.ok()) return active_error_;
    query_adapter = active_.get();
  }
  // Without an adapter the index searches the caller's queries: under L2 as
  // they are, and under cosine also where the index's scores scale with the
  // query, each hit's score then divided by its query's norm (the ranking is
  // the normalised query's). Copying them normalised instead was a fifth of
  // the store's own CPU samples around a batched IVF search at nprobe 1.
  const bool cosine = options_.metric == Metric::kCosine;
  const bool divide_by_norms = cosine && query_adapter == nullptr && index->scores_scale_with_query();
  const float* index_queries = queries;
  if (query_adapter != nullptr || (cosine && !divide_by_norms)) {
    EMBEDAPT_RETURN_IF_ERROR(to_index_space(query_adapter, queries, n, &mapped, squares.data()));
    index_queries = mapped.data();
  }
  EMBEDAPT_RETURN_IF_ERROR(
      index->search(index_queries, n, options, filtered ? &allowed : nullptr, &neighbors));
  if (mapped.capacity() > kKeptQueryFloats) std::vector<float>().swap(mapped);
  for (size_t q = 0; divide_by_norms && q < n; ++q) {
    const float inverse_norm = static_cast<float>(1.0 / std::sqrt(squares[q]));
    for (Neighbor& neighbor : neighbors[q]) neighbor.score *= inverse_norm;
  }
  if (options.ids_only) {
    if (!read.owns_lock()) read.lock();  // a view's own index: the ids as of now
    name_hits(neighbors, index->searches_in_parallel(n, filtered), results);
    return Status::OK();
  }
  // Cleared, not replaced: a caller that passes the same results to batch
  // after batch reuses their memory.
  results->resize(n);
  for (std::vector<Hit>& hits : *results) hits.clear();
  // Every hit's docs and metadata entries in one batched read, which sees one
  // state of both column families: two Gets per hit cost the store up to a
  // fifth of a fast IVF search (store_bench).
  std::vector<std::string> keys;
  for (const auto& found : neighbors) {
    for (const Neighbor& neighbor : found) keys.push_back(codec::key_u64(neighbor.id));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  std::vector<rocksdb::Slice> slices;
  families.reserve(2 * keys.size());
  slices.reserve(2 * keys.size());
  for (const std::string& key : keys) {
    families.insert(families.end(), {cf(kDocs), cf(kMetadata)});
    slices.insert(slices.end(), {key, key});
  }
  std::vector<rocksdb::PinnableSlice> values(slices.size());
  std::vector<rocksdb::Status> statuses(slices.size());
  if (!slices.empty()) {
    db_->MultiGet(rocksdb::ReadOptions(), slices.size(), families.data(), slices.data(), values.data(),
                  statuses.data());
  }
  size_t at = 0;  // the hit's docs entry in the batch; its metadata follows
  for (size_t q = 0; q < n; ++q) {
    for (const Neighbor& neighbor : neighbors[q]) {
      const rocksdb::Status& doc = statuses[at];
      const rocksdb::Status& metadata = statuses[at + 1];
      const std::string_view doc_value = values[at].ToStringView();
      const std::string_view metadata_value = values[at + 1].ToStringView();
      at += 2;
      if (doc.IsNotFound()) continue;  // removed after the index was searched
      EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(doc, path_ + ": reading a search hit"));
      if (!metadata.IsNotFound()) {
        EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(metadata, path_ + ": reading metadata"));
      }
      Hit hit;
      if (!parse_doc_value(doc_value, &hit.id, &hit.payload)) {
        return Status::Corruption(path_ + ": docs entry " + std::to_string(neighbor.id) + " is malformed");
      }
      if (metadata.ok()) hit.metadata.assign(metadata_value);
      hit.score = neighbor.score;
      (*results)[q].push_back(std::move(hit));
    }
  }
  return Status::OK();
}

// Each Hit is overwritten in place rather than cleared and made anew: the
// index search has evicted a caller's results from the cache by now (IVF
// lists stream through it), and destroying then constructing each Hit touched
// its memory twice. The next query's names and Hits are loaded while this
// one's are written (a cache miss each). With `parallel` (the index search
// ran on the caller's OpenMP threads) the queries are shared among those
// threads, which would otherwise spin through this serial tail: on 2 cores,
// batches of 64 over IVF1024 x 100k at nprobe 1 (about 15 us a query),
// naming took 1.1 us a query on one thread and 0.75 us on two (a scratch
// driver's timer). After a search that did not use them (an exact batch
// FAISS hands to BLAS) they sleep, and waking them cost more than the naming
// (libgomp spins a woken thread for milliseconds after its work): 10% more
// CPU for Flat batches of 64 over 100k in store_bench.
void StoreImpl::name_hits(const std::vector<std::vector<Neighbor>>& neighbors, bool parallel,
                          std::vector<std::vector<Hit>>* results) const {
  const size_t n = neighbors.size();
  results->resize(n);
  auto prefetch = [&](size_t q) {
    const std::vector<Hit>& hits = (*results)[q];
    for (size_t i = 0; i < neighbors[q].size(); ++i) {
      ids_by_iid_.prefetch(neighbors[q][i].id);
      if (i < hits.size()) __builtin_prefetch(&hits[i], 1);
    }
  };
  auto name = [&](size_t q) {
    if (q + 1 < n) prefetch(q + 1);
    std::vector<Hit>& hits = (*results)[q];
    hits.reserve(neighbors[q].size());
    size_t named = 0;
    for (const Neighbor& neighbor : neighbors[q]) {
      const std::string* id = ids_by_iid_.find(neighbor.id);
      if (id == nullptr) continue;  // removed after the view's index was built
      if (named == hits.size()) hits.emplace_back();
      Hit& hit = hits[named++];
      hit.id = *id;
      hit.score = neighbor.score;
      hit.payload.clear();
      hit.metadata.clear();
    }
    hits.resize(named);
  };
  if (n > 0) prefetch(0);
  if (!parallel) {  // not even a one-thread region: libgomp makes a team for it
    for (size_t q = 0; q < n; ++q) name(q);
    return;
  }
  std::exception_ptr failure;  // an exception may not leave a parallel region
#pragma omp parallel for schedule(static)
  for (size_t q = 0; q < n; ++q) {
    try {
      name(q);
    } catch (...) {
#pragma omp critical(embedapt_name_hits)
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

Status StoreImpl::scan(const std::function<bool(const Record&)>& fn) const {
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, cf(kIds)));
  Status status;
  Record record;
  std::string doc, vector;
  for (it->SeekToFirst(); it->Valid() && status.ok(); it->Next()) {
    rocksdb::Status s = db_->Get(read, cf(kDocs), it->value(), &doc);
    if (s.ok()) s = db_->Get(read, cf(kVectors), it->value(), &vector);
    status = from_rocksdb(s, path_ + ": scanning '" + it->key().ToString() + "'");
    if (status.ok()) status = read_metadata(read, it->value().ToString(), &record.metadata);
    if (!status.ok()) break;
    if (!parse_doc_value(doc, &record.id, &record.payload) || vector.size() % sizeof(float) != 0) {
      status = Status::Corruption(path_ + ": record '" + it->key().ToString() + "' is malformed");
      break;
    }
    record.vector.resize(vector.size() / sizeof(float));
    std::memcpy(record.vector.data(), vector.data(), vector.size());
    codec::parse_key_u64(std::string_view(it->value().data(), it->value().size()), &record.version);
    if (!fn(record)) break;
  }
  if (status.ok()) status = from_rocksdb(it->status(), path_ + ": scanning");
  it.reset();
  db_->ReleaseSnapshot(snapshot);
  return status;
}

Status StoreImpl::read_journal(uint64_t after_seq, const std::function<bool(const JournalEntry&)>& fn) const {
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, cf(kJournal)));
  Status status;
  JournalEntry entry;
  bool first = true;
  std::string doc, vector;
  for (it->Seek(codec::key_u64(after_seq + 1)); it->Valid(); it->Next(), first = false) {
    std::string_view value(it->value().data(), it->value().size());
    if (!codec::parse_key_u64(std::string_view(it->key().data(), it->key().size()), &entry.seq) ||
        value.size() != 9 || (value[0] != 'a' && value[0] != 'r')) {
      status = Status::Corruption(path_ + ": malformed journal entry");
      break;
    }
    if (first && entry.seq != after_seq + 1) break;  // trimmed: reported below
    entry.removed = value[0] == 'r';
    value.remove_prefix(1);
    codec::get_u64(&value, &entry.version);
    entry.record = Record();
    if (!entry.removed) {
      const std::string key = codec::key_u64(entry.version);
      rocksdb::Status s = db_->Get(read, cf(kDocs), key, &doc);
      if (s.ok()) s = db_->Get(read, cf(kVectors), key, &vector);
      if (s.ok()) {
        if (!parse_doc_value(doc, &entry.record.id, &entry.record.payload) ||
            vector.size() % sizeof(float) != 0) {
          status = Status::Corruption(path_ + ": record version " + std::to_string(entry.version) +
                                      " is malformed");
          break;
        }
        entry.record.vector.resize(vector.size() / sizeof(float));
        std::memcpy(entry.record.vector.data(), vector.data(), vector.size());
        entry.record.version = entry.version;
      } else if (!s.IsNotFound()) {
        status = from_rocksdb(s, path_ + ": reading record version " + std::to_string(entry.version));
        break;
      }
    }
    if (!fn(entry)) break;
  }
  if (status.ok()) status = from_rocksdb(it->status(), path_ + ": reading the journal");
  if (status.ok() && first) {
    // Nothing read at after_seq + 1: fine only if nothing was journaled after it.
    uint64_t last = 0;
    std::string value;
    rocksdb::Status s = db_->Get(read, cf(kMeta), "journal_seq", &value);
    std::string_view in(value);
    if (s.ok() && !codec::get_u64(&in, &last)) s = rocksdb::Status::Corruption("malformed");
    if (!s.IsNotFound()) status = from_rocksdb(s, path_ + ": meta journal_seq");
    if (status.ok() && last > after_seq) {
      status = Status::FailedPrecondition(path_ + ": the journal no longer holds the mutations after seq " +
                                          std::to_string(after_seq));
    }
  }
  it.reset();
  db_->ReleaseSnapshot(snapshot);
  return status;
}

Status StoreImpl::put_cursor(std::string_view name, const JournalCursor& cursor) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("put_cursor"));
  if (name.empty()) return Status::InvalidArgument("put_cursor: empty name");
  std::lock_guard<std::mutex> lock(write_mu_);
  if (cursor.seq > journal_seq_) {
    return Status::InvalidArgument("put_cursor: seq " + std::to_string(cursor.seq) +
                                   " is past the journal's " + std::to_string(journal_seq_));
  }
  std::string value = u64_value(cursor.seq);
  value.append(cursor.state);
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Put(write_options_, cf(kMeta), std::string(kCursorPrefix) + std::string(name), value),
                   path_ + ": writing cursor '" + std::string(name) + "'"));
  cursors_[std::string(name)] = cursor.seq;
  return Status::OK();
}

Status StoreImpl::get_cursor(std::string_view name, JournalCursor* out) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), cf(kMeta), std::string(kCursorPrefix) + std::string(name), &value);
  if (s.IsNotFound()) return Status::NotFound("no journal cursor '" + std::string(name) + "'");
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": reading cursor '" + std::string(name) + "'"));
  std::string_view in(value);
  if (!codec::get_u64(&in, &out->seq))
    return Status::Corruption(path_ + ": malformed cursor " + std::string(name));
  out->state.assign(in);
  return Status::OK();
}

Status StoreImpl::remove_cursor(std::string_view name) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("remove_cursor"));
  std::lock_guard<std::mutex> lock(write_mu_);
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Delete(write_options_, cf(kMeta), std::string(kCursorPrefix) + std::string(name)),
                   path_ + ": removing cursor '" + std::string(name) + "'"));
  cursors_.erase(std::string(name));
  return Status::OK();
}

Status StoreImpl::set_embedder(std::string_view identity) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("set_embedder"));
  if (identity.empty()) return Status::InvalidArgument("set_embedder: empty identity");
  std::lock_guard<std::mutex> lock(write_mu_);
  if (embedder_ == identity) return Status::OK();
  if (!embedder_.empty()) {
    return Status::FailedPrecondition(path_ + ": holds vectors of embedder '" + embedder_ + "', not '" +
                                      std::string(identity) + "'");
  }
  rocksdb::WriteOptions sync;
  sync.sync = true;
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Put(sync, cf(kMeta), "embedder", rocksdb::Slice(identity.data(), identity.size())),
                   path_ + ": writing embedder"));
  embedder_ = identity;
  return Status::OK();
}

Status StoreImpl::stats(StoreStats* out) const {
  std::lock_guard<std::mutex> lock(write_mu_);
  std::shared_lock<std::shared_mutex> read(mu_);
  StoreStats stats;
  stats.count = index_->live_count();
  stats.dim = options_.dim;
  stats.metric = options_.metric;
  stats.index_spec = options_.index_spec;
  stats.journal_seq = journal_seq_;
  stats.snapshot_seq = snapshot_seq_;
  stats.disk_bytes = directory_bytes(path_);
  stats.active_adapter = active_version_;
  stats.adapter_versions = next_adapter_ - 1;
  stats.logged_queries = query_count_;
  stats.logged_hits = hit_count_;
  stats.embedder = embedder_;
  stats.recovery = recovery_;
  stats.active_adapter_error = active_error_.message();
  stats.read_only = options_.read_only;
  *out = std::move(stats);
  return Status::OK();
}

Status StoreImpl::verify() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  std::shared_lock<std::shared_mutex> read(mu_);
  if (index_stale_) return Status::Corruption(path_ + ": the index missed a write and is not rebuilt yet");
  std::vector<int64_t> indexed = index_->live_ids();
  std::sort(indexed.begin(), indexed.end());
  if (std::adjacent_find(indexed.begin(), indexed.end()) != indexed.end()) {
    return Status::Corruption(path_ + ": the index holds an iid twice");
  }
  size_t stored = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kVectors)));
  std::string doc, iid_key;
  std::string id, payload;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++stored) {
    uint64_t iid = 0;
    codec::parse_key_u64({it->key().data(), it->key().size()}, &iid);
    if (!std::binary_search(indexed.begin(), indexed.end(), static_cast<int64_t>(iid))) {
      return Status::Corruption(path_ + ": vector " + std::to_string(iid) + " is stored but not indexed");
    }
    if (it->value().size() != size_t(options_.dim) * sizeof(float)) {
      return Status::Corruption(path_ + ": vector " + std::to_string(iid) + " has the wrong size");
    }
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kDocs), it->key(), &doc);
    if (!s.ok() || !parse_doc_value(doc, &id, &payload)) {
      return Status::Corruption(path_ + ": vector " + std::to_string(iid) + " has no document");
    }
    s = db_->Get(rocksdb::ReadOptions(), cf(kIds), id, &iid_key);
    if (!s.ok() || iid_key != it->key().ToString()) {
      return Status::Corruption(path_ + ": id '" + id + "' does not map back to vector " +
                                std::to_string(iid));
    }
    const std::string* in_memory = ids_by_iid_.find(static_cast<int64_t>(iid));
    if (in_memory == nullptr || *in_memory != id) {
      return Status::Corruption(path_ + ": the in-memory ids miss or misname vector " + std::to_string(iid) +
                                " ('" + id + "')");
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning vectors"));
  if (stored != indexed.size() || stored != ids_by_iid_.size()) {
    return Status::Corruption(path_ + ": the index holds " + std::to_string(indexed.size()) +
                              " vectors, the in-memory ids " + std::to_string(ids_by_iid_.size()) +
                              ", RocksDB " + std::to_string(stored));
  }
  size_t ids = 0;
  it.reset(db_->NewIterator(rocksdb::ReadOptions(), cf(kIds)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++ids;
  if (ids != stored) {
    return Status::Corruption(path_ + ": " + std::to_string(ids) + " ids for " + std::to_string(stored) +
                              " vectors");
  }
  return verify_metadata();
}

// Every record's metadata has exactly its index keys, and the index holds no
// other key.
Status StoreImpl::verify_metadata() const {
  size_t expected = 0;
  std::string value;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kMetadata)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    uint64_t iid = 0;
    codec::parse_key_u64({it->key().data(), it->key().size()}, &iid);
    const std::string what = "metadata of record " + std::to_string(iid);
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kVectors), it->key(), &value);
    if (!s.ok()) return Status::Corruption(path_ + ": " + what + " has no vector");
    nlohmann::json metadata;
    Status parsed = ParseMetadata({it->value().data(), it->value().size()}, what, &metadata);
    if (!parsed.ok()) return Status::Corruption(path_ + ": stored " + parsed.message());
    for (const std::string& key : metadata_index::keys(metadata, iid)) {
      s = db_->Get(rocksdb::ReadOptions(), cf(kMetadataIndex), key, &value);
      if (!s.ok()) return Status::Corruption(path_ + ": " + what + " is missing from the metadata index");
      ++expected;
    }
  }
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning metadata"));
  size_t indexed = 0;
  it.reset(db_->NewIterator(rocksdb::ReadOptions(), cf(kMetadataIndex)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++indexed;
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning the metadata index"));
  if (indexed != expected) {
    return Status::Corruption(path_ + ": the metadata index holds " + std::to_string(indexed) +
                              " keys, the records' metadata " + std::to_string(expected));
  }
  return Status::OK();
}

}  // namespace embedapt
