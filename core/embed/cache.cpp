#include "core/embed/cache.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "core/common/rocksdb_status.h"
#include "core/common/sha256.h"

namespace embedapt {

namespace {

// Vectors: key = sha256(identity) + side + sha256(text), 65 bytes.
std::string vector_key(const std::string& identity_hash, EmbedSide side, const std::string& text) {
  return identity_hash + (side == EmbedSide::kQuery ? 'q' : 'd') + sha256(text);
}

// The dimension an identity's vectors have: "dim/" + sha256(identity), a
// length no vector key has.
std::string dim_key(const std::string& identity) { return "dim/" + sha256(identity); }

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// Open caches of this process by directory, so that a second open of the
// same directory shares the handle instead of failing on RocksDB's lock. An
// entry whose weak_ptr has expired is a cache whose destructor is running:
// it still holds the lock, so open() waits for cache_closed, which the
// destructor signals after closing RocksDB and erasing the entry.
std::mutex open_caches_mu;
std::condition_variable cache_closed;
std::map<std::string, std::weak_ptr<EmbeddingCache>> open_caches;

class CachedEmbedder : public Embedder {
 public:
  CachedEmbedder(std::shared_ptr<EmbeddingCache> cache, std::unique_ptr<Embedder> inner)
      : cache_(std::move(cache)), inner_(std::move(inner)) {}

  int dim() const override { return inner_->dim(); }
  const std::string& identity() const override { return inner_->identity(); }

  Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) override {
    const size_t dim = static_cast<size_t>(inner_->dim());
    // Distinct texts in first-seen order; slot[i] is texts[i]'s place among them.
    std::vector<std::string> distinct;
    std::vector<size_t> slot(texts.size());
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < texts.size(); ++i) {
      auto [it, added] = seen.emplace(texts[i], distinct.size());
      if (added) distinct.push_back(texts[i]);
      slot[i] = it->second;
    }
    std::vector<float> rows;
    std::vector<bool> found;
    Status looked = cache_->lookup(identity(), side, distinct, inner_->dim(), &rows, &found);
    if (!looked.ok()) {
      warn_once(looked);
      found.assign(distinct.size(), false);
      rows.assign(distinct.size() * dim, 0.0f);
    }

    std::vector<std::string> misses;
    std::vector<size_t> miss_slots;
    for (size_t j = 0; j < distinct.size(); ++j) {
      if (!found[j]) {
        misses.push_back(distinct[j]);
        miss_slots.push_back(j);
      }
    }
    if (!misses.empty()) {
      std::vector<float> fresh;
      EMBEDAPT_RETURN_IF_ERROR(inner_->embed(misses, side, &fresh));
      for (size_t m = 0; m < misses.size(); ++m) {
        std::copy(fresh.begin() + m * dim, fresh.begin() + (m + 1) * dim, rows.begin() + miss_slots[m] * dim);
      }
      // The vectors are good even if storing them is not: warn, do not fail.
      Status stored = cache_->store(identity(), side, misses, inner_->dim(), fresh);
      if (!stored.ok()) warn_once(stored);
    }

    out->reserve(out->size() + texts.size() * dim);
    for (size_t i = 0; i < texts.size(); ++i) {
      out->insert(out->end(), rows.begin() + slot[i] * dim, rows.begin() + (slot[i] + 1) * dim);
    }
    return Status::OK();
  }

 private:
  void warn_once(const Status& s) {
    if (!warned_.exchange(true)) {
      std::fprintf(stderr, "embedapt: warning: embedding cache %s: %s; continuing without it\n",
                   cache_->dir().c_str(), s.message().c_str());
    }
  }

  const std::shared_ptr<EmbeddingCache> cache_;
  const std::unique_ptr<Embedder> inner_;
  std::atomic<bool> warned_{false};
};

}  // namespace

Status EmbeddingCache::open(const std::string& dir, std::shared_ptr<EmbeddingCache>* out) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError(dir + ": cannot create the embedding cache directory: " + ec.message());
  std::string key = std::filesystem::weakly_canonical(dir, ec).string();
  if (ec) key = dir;

  std::shared_ptr<EmbeddingCache> cache;
  {
    std::unique_lock<std::mutex> lock(open_caches_mu);
    for (auto it = open_caches.find(key); it != open_caches.end(); it = open_caches.find(key)) {
      cache = it->second.lock();
      if (cache != nullptr) break;
      cache_closed.wait(lock);  // closing: wait until its RocksDB lock is released
    }
    if (cache == nullptr) {
      rocksdb::Options options;
      options.create_if_missing = true;
      options.max_open_files = 64;
      rocksdb::DB* db = nullptr;
      rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
      EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(s, dir + ": opening the embedding cache"));
      cache.reset(new EmbeddingCache(dir, key, db));
      open_caches[key] = cache;
    }
  }
  *out = std::move(cache);  // outside the lock: this may destroy a cache *out held
  return Status::OK();
}

EmbeddingCache::~EmbeddingCache() {
  // Under the registry lock, so that no open() of this directory races the
  // close; the entry goes only once RocksDB has let go of the directory.
  std::lock_guard<std::mutex> lock(open_caches_mu);
  db_->Close();
  delete db_;
  auto it = open_caches.find(key_);
  if (it != open_caches.end() && it->second.expired()) open_caches.erase(it);
  cache_closed.notify_all();
}

int EmbeddingCache::recorded_dim(const std::string& identity) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), dim_key(identity), &value).ok()) return 0;
  int dim = 0;
  if (value.size() != sizeof dim) return 0;
  std::memcpy(&dim, value.data(), sizeof dim);
  return dim > 0 ? dim : 0;
}

Status EmbeddingCache::lookup(const std::string& identity, EmbedSide side,
                              const std::vector<std::string>& texts, int dim, std::vector<float>* rows,
                              std::vector<bool>* found) const {
  const std::string identity_hash = sha256(identity);
  const size_t row_bytes = static_cast<size_t>(dim) * sizeof(float);
  std::vector<std::string> keys;
  keys.reserve(texts.size());
  for (const auto& text : texts) keys.push_back(vector_key(identity_hash, side, text));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<std::string> values;
  std::vector<rocksdb::Status> statuses = db_->MultiGet(rocksdb::ReadOptions(), slices, &values);

  rows->assign(texts.size() * dim, 0.0f);
  found->assign(texts.size(), false);
  for (size_t i = 0; i < texts.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(statuses[i], dir_ + ": embedding cache read"));
    if (values[i].size() != row_bytes) continue;  // stored with another dimension: a miss
    std::memcpy(rows->data() + i * dim, values[i].data(), row_bytes);
    (*found)[i] = true;
  }
  return Status::OK();
}

Status EmbeddingCache::store(const std::string& identity, EmbedSide side,
                             const std::vector<std::string>& texts, int dim, const std::vector<float>& rows) {
  if (rows.size() != texts.size() * dim) {
    return Status::Internal("embedding cache store: " + std::to_string(rows.size()) + " floats for " +
                            std::to_string(texts.size()) + " texts of dimension " + std::to_string(dim));
  }
  const std::string identity_hash = sha256(identity);
  const size_t row_bytes = static_cast<size_t>(dim) * sizeof(float);
  rocksdb::WriteBatch batch;
  batch.Put(dim_key(identity), rocksdb::Slice(reinterpret_cast<const char*>(&dim), sizeof dim));
  for (size_t i = 0; i < texts.size(); ++i) {
    batch.Put(vector_key(identity_hash, side, texts[i]),
              rocksdb::Slice(reinterpret_cast<const char*>(rows.data() + i * dim), row_bytes));
  }
  return from_rocksdb(db_->Write(rocksdb::WriteOptions(), &batch), dir_ + ": embedding cache write");
}

std::string resolve_cache_dir(const EmbedderOptions& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  if (std::string dir = env("EMBEDAPT_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty()) return xdg + "/embedapt";
  if (std::string home = env("HOME"); !home.empty()) return home + "/.cache/embedapt";
  return ".embedapt-cache";
}

std::unique_ptr<Embedder> make_cached_embedder(std::shared_ptr<EmbeddingCache> cache,
                                               std::unique_ptr<Embedder> inner) {
  return std::make_unique<CachedEmbedder>(std::move(cache), std::move(inner));
}

}  // namespace embedapt
