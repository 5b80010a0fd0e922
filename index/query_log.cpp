// The query log: queries (deduplicated by vector) and the hits users chose.
#include <rocksdb/write_batch.h>

#include <ctime>

#include "core/common/rocksdb_status.h"
#include "core/common/sha256.h"
#include "index/codec.h"
#include "index/store_impl.h"

namespace embedapt {
namespace {

std::string vector_hash(const float* v, size_t dim) {
  return sha256({reinterpret_cast<const char*>(v), dim * sizeof(float)});
}

std::string u64_value(uint64_t v) {
  std::string value;
  codec::put_u64(&value, v);
  return value;
}

std::string pair_key(uint64_t query_id, std::string_view doc_id) {
  return codec::key_u64(query_id) + std::string(doc_id);
}

}  // namespace

Status StoreImpl::log_query(const float* query, size_t dim, const std::vector<std::string>& result_ids,
                            uint64_t* query_id) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("log_query"));
  EMBEDAPT_RETURN_IF_ERROR(validate_vector(query, dim).WithContext("log_query"));
  // The ids log_hit takes: an empty or oversized result was logged, and no
  // hit could ever name it.
  for (size_t i = 0; i < result_ids.size(); ++i) {
    if (result_ids[i].empty() || result_ids[i].size() > kMaxIdBytes) {
      return Status::InvalidArgument("log_query: result " + std::to_string(i) + "'s id must be 1.." +
                                     std::to_string(kMaxIdBytes) + " bytes");
    }
  }
  const std::string hash = vector_hash(query, dim);
  std::lock_guard<std::mutex> lock(write_mu_);
  std::string existing;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kQueryHashes), hash, &existing);
  if (s.ok()) {
    std::string_view in(existing);
    if (!codec::get_u64(&in, query_id)) return Status::Corruption(path_ + ": query hash entry is malformed");
    return Status::OK();
  }
  if (!s.IsNotFound()) return from_rocksdb(s, path_ + ": looking up a logged query");
  const uint64_t id = next_query_;
  std::string value;
  codec::put_u64(&value, static_cast<uint64_t>(std::time(nullptr)));
  codec::put_floats(&value, query, dim);
  codec::put_u64(&value, result_ids.size());
  for (const std::string& result : result_ids) codec::put_string(&value, result);
  rocksdb::WriteBatch batch;
  batch.Put(cf(kQueries), codec::key_u64(id), value);
  batch.Put(cf(kQueryHashes), hash, u64_value(id));
  uint64_t queries = query_count_ + 1, hits = hit_count_;
  if (options_.query_log_max_hits > 0 && queries > options_.query_log_max_hits) {
    EMBEDAPT_RETURN_IF_ERROR(evict_queries_locked(queries - options_.query_log_max_hits, &batch, &hits));
    queries = options_.query_log_max_hits;
  }
  batch.Put(cf(kMeta), "next_query", u64_value(id + 1));
  batch.Put(cf(kMeta), "query_count", u64_value(queries));
  batch.Put(cf(kMeta), "hit_count", u64_value(hits));
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(write_options_, &batch), path_ + ": logging a query"));
  next_query_ = id + 1;
  query_count_ = queries;
  hit_count_ = hits;
  *query_id = id;
  return Status::OK();
}

// Drops the `n` oldest logged queries with their hashes and hits into
// `batch`, counting the hits dropped off *hits.
Status StoreImpl::evict_queries_locked(uint64_t n, rocksdb::WriteBatch* batch, uint64_t* hits) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kQueries)));
  std::unique_ptr<rocksdb::Iterator> pairs(db_->NewIterator(rocksdb::ReadOptions(), cf(kHitPairs)));
  for (it->SeekToFirst(); it->Valid() && n > 0; it->Next(), --n) {
    std::string_view value(it->value().data(), it->value().size());
    uint64_t time = 0;
    std::vector<float> vector;
    if (!codec::get_u64(&value, &time) || !codec::get_floats(&value, &vector)) {
      return Status::Corruption(path_ + ": a logged query is malformed");
    }
    batch->Delete(cf(kQueries), it->key());
    batch->Delete(cf(kQueryHashes), vector_hash(vector.data(), vector.size()));
    const std::string prefix = it->key().ToString();  // hit_pairs keys start with the query id
    for (pairs->Seek(prefix); pairs->Valid() && pairs->key().starts_with(prefix); pairs->Next()) {
      std::string_view seq_value(pairs->value().data(), pairs->value().size());
      uint64_t seq = 0;
      if (!codec::get_u64(&seq_value, &seq))
        return Status::Corruption(path_ + ": a logged hit pair is malformed");
      batch->Delete(cf(kHits), codec::key_u64(seq));  // the value is a plain u64, the key big-endian
      batch->Delete(cf(kHitPairs), pairs->key());
      if (*hits > 0) --*hits;
    }
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(pairs->status(), path_ + ": scanning logged hits"));
  }
  return from_rocksdb(it->status(), path_ + ": scanning logged queries");
}

// Appends the hit in time order; past Options::query_log_max_hits, the oldest
// hits are dropped in the same batch.
Status StoreImpl::log_hit(uint64_t query_id, std::string_view doc_id) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("log_hit"));
  if (doc_id.empty() || doc_id.size() > kMaxIdBytes) {
    return Status::InvalidArgument("log_hit: doc id must be 1.." + std::to_string(kMaxIdBytes) + " bytes");
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(kQueries), codec::key_u64(query_id), &value);
  if (s.IsNotFound()) return Status::NotFound("log_hit: no logged query " + std::to_string(query_id));
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, path_ + ": reading logged query " + std::to_string(query_id)));
  const std::string pair = pair_key(query_id, doc_id);
  s = db_->Get(rocksdb::ReadOptions(), cf(kHitPairs), pair, &value);
  if (s.ok()) return Status::OK();
  if (!s.IsNotFound()) return from_rocksdb(s, path_ + ": looking up a logged hit");

  const uint64_t seq = next_hit_;
  uint64_t count = hit_count_ + 1;
  rocksdb::WriteBatch batch;
  std::string hit;
  codec::put_u64(&hit, query_id);
  codec::put_u64(&hit, static_cast<uint64_t>(std::time(nullptr)));
  hit.append(doc_id);
  batch.Put(cf(kHits), codec::key_u64(seq), hit);
  batch.Put(cf(kHitPairs), pair, u64_value(seq));
  if (options_.query_log_max_hits > 0 && count > options_.query_log_max_hits) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kHits)));
    for (it->SeekToFirst(); it->Valid() && count > options_.query_log_max_hits; it->Next(), --count) {
      std::string_view old(it->value().data(), it->value().size());
      uint64_t old_query = 0, old_time = 0;
      if (!codec::get_u64(&old, &old_query) || !codec::get_u64(&old, &old_time)) {
        return Status::Corruption(path_ + ": a logged hit is malformed");
      }
      batch.Delete(cf(kHits), it->key());
      batch.Delete(cf(kHitPairs), pair_key(old_query, old));
    }
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(it->status(), path_ + ": scanning logged hits"));
  }
  batch.Put(cf(kMeta), "next_hit", u64_value(seq + 1));
  batch.Put(cf(kMeta), "hit_count", u64_value(count));
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(write_options_, &batch), path_ + ": logging a hit"));
  next_hit_ = seq + 1;
  hit_count_ = count;
  count_new_hit();
  return Status::OK();
}

// Walks hit_pairs, whose keys (query id, doc id) already group each query's
// hits, and reads each query's vector once.
Status StoreImpl::scan_log(const std::function<bool(const LoggedQuery&)>& fn) const {
  rocksdb::ReadOptions read;
  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, cf(kHitPairs)));
  LoggedQuery query;
  // Reads query `id`'s vector into `query` and starts its hit list.
  auto start_query = [&](uint64_t id) -> Status {
    const std::string what = path_ + ": logged query " + std::to_string(id);
    std::string value;
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Get(read, cf(kQueries), codec::key_u64(id), &value), what));
    std::string_view in(value);
    uint64_t time = 0;
    if (!codec::get_u64(&in, &time) || !codec::get_floats(&in, &query.vector)) {
      return Status::Corruption(what + " is malformed");
    }
    query.id = id;
    query.hit_ids.clear();
    return Status::OK();
  };
  Status status;
  bool more = true;
  for (it->SeekToFirst(); it->Valid() && more; it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    uint64_t id = 0;
    if (key.size() <= 8 || !codec::parse_key_u64(key.substr(0, 8), &id)) {
      status = Status::Corruption(path_ + ": a logged hit's key is malformed");
      break;
    }
    if (query.hit_ids.empty() || id != query.id) {
      if (!query.hit_ids.empty()) more = fn(query);
      if (!more) break;
      status = start_query(id);
      if (!status.ok()) break;
    }
    query.hit_ids.emplace_back(key.substr(8));
  }
  if (status.ok()) status = from_rocksdb(it->status(), path_ + ": scanning logged hits");
  if (status.ok() && more && !query.hit_ids.empty()) fn(query);
  it.reset();
  db_->ReleaseSnapshot(snapshot);
  return status;
}

}  // namespace embedapt
