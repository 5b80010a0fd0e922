// The persistent embedding cache: each distinct (embedder, side, text) is
// embedded once, ever.
//
// A RocksDB database; key = sha256(identity) + side byte ('q' or 'd') +
// sha256(text), value = the vector as little-endian float32. Writes go
// through RocksDB's write-ahead log, so a process killed with -9 loses at most
// the batch it was embedding. RocksDB lets one process open a database: in a
// process, every open of one directory shares a handle; another process's
// open fails with kBusy.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "embedapt/embedder.h"
#include "embedapt/status.h"

namespace rocksdb {
class DB;
}

namespace embedapt {

class EmbeddingCache {
 public:
  // Opens (creating) the cache in `dir`, or shares the handle this process
  // already has. kBusy when another process holds the directory's lock.
  static Status open(const std::string& dir, std::shared_ptr<EmbeddingCache>* out);
  ~EmbeddingCache();

  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  const std::string& dir() const { return dir_; }

  // The dimension vectors of `identity` were stored with, or 0 when none
  // were: lets a remote embedder skip asking its model.
  int recorded_dim(const std::string& identity) const;

  // For each of `texts`: when cached with `dim` floats, copies them to
  // rows[i * dim...] and sets found[i]. *rows is resized to texts.size() * dim.
  Status lookup(const std::string& identity, EmbedSide side, const std::vector<std::string>& texts, int dim,
                std::vector<float>* rows, std::vector<bool>* found) const;

  // Stores texts.size() rows of `dim` floats (row-major in `rows`).
  Status store(const std::string& identity, EmbedSide side, const std::vector<std::string>& texts, int dim,
               const std::vector<float>& rows);

 private:
  EmbeddingCache(std::string dir, std::string key, rocksdb::DB* db)
      : dir_(std::move(dir)), key_(std::move(key)), db_(db) {}

  const std::string dir_;
  const std::string key_;  // of this process's registry of open caches (the canonical dir)
  rocksdb::DB* const db_;
};

// The cache directory `options` name: options.cache_dir, else
// $EMBEDAPT_CACHE_DIR, else $XDG_CACHE_HOME/embedapt, else ~/.cache/embedapt.
std::string resolve_cache_dir(const EmbedderOptions& options);

// Wraps `inner` so that only texts the cache lacks reach it, each once even
// when repeated within a call. Thread-safe when `inner` is.
std::unique_ptr<Embedder> make_cached_embedder(std::shared_ptr<EmbeddingCache> cache,
                                               std::unique_ptr<Embedder> inner);

}  // namespace embedapt
