// Adapter versions, activation and rollback, and views under an adapter.
#include <rocksdb/write_batch.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "core/common/rocksdb_status.h"
#include "index/codec.h"
#include "index/store_impl.h"

namespace embedapt {
namespace {

std::string encode_adapter(const AdapterVersion& v) {
  std::string value;
  codec::put_u64(&value, v.version);
  codec::put_u64(&value, v.parent);
  codec::put_u64(&value, static_cast<uint64_t>(v.created_unix));
  codec::put_string(&value, v.config_json);
  codec::put_string(&value, v.data_fingerprint);
  codec::put_string(&value, v.metrics_json);
  codec::put_string(&value, v.weights);  // last, so a listing can stop before it
  return value;
}

bool decode_adapter(std::string_view value, bool with_weights, AdapterVersion* v) {
  uint64_t created = 0;
  bool ok = codec::get_u64(&value, &v->version) && codec::get_u64(&value, &v->parent) &&
            codec::get_u64(&value, &created) && codec::get_string(&value, &v->config_json) &&
            codec::get_string(&value, &v->data_fingerprint) && codec::get_string(&value, &v->metrics_json);
  v->created_unix = static_cast<int64_t>(created);
  if (ok && with_weights) ok = codec::get_string(&value, &v->weights);
  return ok;
}

// A view searching its own index, built for an adapter whose document side
// differs from the live index's, or the live index with another query adapter.
class AdapterView final : public SearchView {
 public:
  AdapterView(const StoreImpl* store, std::shared_ptr<const Adapter> adapter,
              std::unique_ptr<VectorIndex> own, uint64_t live_doc_version)
      : store_(store),
        adapter_(std::move(adapter)),
        own_(std::move(own)),
        live_doc_version_(live_doc_version) {}

  Status search(const float* queries, size_t n, const SearchOptions& options,
                std::vector<std::vector<Hit>>* results) const override {
    StoreImpl::SearchTarget target;
    target.index = own_.get();
    target.active_adapter = false;
    target.query_adapter = adapter_.get();
    target.live_doc_version = live_doc_version_;
    return store_->search_with(target, queries, n, options, results);
  }

 private:
  const StoreImpl* const store_;
  const std::shared_ptr<const Adapter> adapter_;
  const std::unique_ptr<VectorIndex> own_;  // nullptr: the store's live index
  const uint64_t live_doc_version_;         // the live index's document side when it was chosen
};

// Loads the stored version and checks it fits this store's vectors. A
// TorchScript version without `trust_code` is refused before any of its bytes
// are parsed, with an error that says which switch allows it.
Status load_stored_adapter(const StoreImpl& store, const std::string& path, int dim,
                           const std::string& embedder, bool trust_code, uint64_t version,
                           std::shared_ptr<const Adapter>* out) {
  AdapterVersion stored;
  EMBEDAPT_RETURN_IF_ERROR(store.get_adapter(version, &stored));
  const std::string what = path + ": adapter version " + std::to_string(version);
  AdapterConfig config;
  EMBEDAPT_RETURN_IF_ERROR(parse_adapter_config(stored.config_json, &config).WithContext(what));
  EMBEDAPT_RETURN_IF_ERROR(check_adapter_fits(config, dim, embedder).WithContext(what));
  if (config.kind == "torchscript" && !trust_code) {
    return Status::FailedPrecondition(what +
                                      " is a TorchScript adapter, which is code: it loads only when trusted "
                                      "(Options::trust_code; --trust-code on the command line)");
  }
  std::unique_ptr<Adapter> adapter;
  AdapterLoadOptions load_options;
  load_options.trust_code = trust_code;
  EMBEDAPT_RETURN_IF_ERROR(
      load_adapter(stored.config_json, stored.weights, load_options, &adapter).WithContext(what));
  *out = std::move(adapter);
  return Status::OK();
}

}  // namespace

Status StoreImpl::put_adapter(AdapterVersion* version) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("put_adapter"));
  std::lock_guard<std::mutex> lock(write_mu_);
  AdapterVersion stored = *version;
  stored.version = next_adapter_;
  if (stored.created_unix == 0) stored.created_unix = std::time(nullptr);
  rocksdb::WriteBatch batch;
  batch.Put(cf(kAdapters), codec::key_u64(stored.version), encode_adapter(stored));
  std::string next;
  codec::put_u64(&next, next_adapter_ + 1);
  batch.Put(cf(kMeta), "next_adapter", next);
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Write(write_options_, &batch), path_ + ": writing adapter version"));
  ++next_adapter_;
  version->version = stored.version;
  version->created_unix = stored.created_unix;
  return Status::OK();
}

Status StoreImpl::get_adapter(uint64_t version, AdapterVersion* out) const {
  std::string value;
  EMBEDAPT_RETURN_IF_ERROR(
      from_rocksdb(db_->Get(rocksdb::ReadOptions(), cf(kAdapters), codec::key_u64(version), &value),
                   path_ + ": no adapter version " + std::to_string(version)));
  if (!decode_adapter(value, /*with_weights=*/true, out)) {
    return Status::Corruption(path_ + ": adapter version " + std::to_string(version) + " is malformed");
  }
  return Status::OK();
}

Status StoreImpl::list_adapters(std::vector<AdapterVersion>* out) const {
  out->clear();
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf(kAdapters)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    AdapterVersion v;
    if (!decode_adapter({it->value().data(), it->value().size()}, /*with_weights=*/false, &v)) {
      return Status::Corruption(path_ + ": an adapter version is malformed");
    }
    out->push_back(std::move(v));
  }
  return from_rocksdb(it->status(), path_ + ": listing adapters");
}

// An active version that cannot be served here does not keep the store
// closed: it opens with the index in raw space (documents unmapped, the way
// the snapshot records it) and searches refuse rather than silently return
// unadapted results, so it can still be inspected, verified and rolled back.
Status StoreImpl::load_active_adapter() {
  if (active_version_ == 0) return Status::OK();
  Status loaded = load_stored_adapter(*this, path_, options_.dim, embedder_, options_.trust_code,
                                      active_version_, &active_);
  if (!loaded.ok()) {
    active_error_ = Status::FailedPrecondition(
        "the active adapter is not served, so searches fail until another version is activated or rolled "
        "back to: " +
        loaded.message());
    return Status::OK();
  }
  doc_adapter_version_ = active_->side() == AdapterSide::kBoth ? active_version_ : 0;
  return Status::OK();
}

Status StoreImpl::activate_adapter(uint64_t version) {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("activate_adapter"));
  std::lock_guard<std::mutex> lock(write_mu_);
  return set_active_locked(version, /*push_history=*/true);
}

Status StoreImpl::rollback_adapter() {
  EMBEDAPT_RETURN_IF_ERROR(check_writable("rollback_adapter"));
  std::lock_guard<std::mutex> lock(write_mu_);
  if (adapter_history_.empty()) {
    return Status::FailedPrecondition(path_ + ": no previously active adapter to roll back to");
  }
  return set_active_locked(adapter_history_.back(), /*push_history=*/false);
}

// Makes `version` active: loads and checks it, builds a new index first when
// the document side changes (searches continue on the old one meanwhile),
// persists the choice, then swaps adapter and index under one exclusive lock.
Status StoreImpl::set_active_locked(uint64_t version, bool push_history) {
  if (version == active_version_ && active_error_.ok()) return Status::OK();
  EMBEDAPT_RETURN_IF_ERROR(rebuild_if_stale_locked());
  std::shared_ptr<const Adapter> adapter;
  if (version != 0) {
    EMBEDAPT_RETURN_IF_ERROR(
        load_stored_adapter(*this, path_, options_.dim, embedder_, options_.trust_code, version, &adapter));
  }
  const uint64_t doc_version = adapter && adapter->side() == AdapterSide::kBoth ? version : 0;
  std::unique_ptr<VectorIndex> rebuilt;
  if (doc_version != doc_adapter_version_) {
    EMBEDAPT_RETURN_IF_ERROR(build_index(doc_version ? adapter.get() : nullptr, &rebuilt));
  }
  std::vector<uint64_t> history = adapter_history_;
  if (push_history) {
    if (version != active_version_) history.push_back(active_version_);
  } else {
    history.pop_back();
  }
  rocksdb::WriteBatch batch;
  std::string active_value, history_value;
  codec::put_u64(&active_value, version);
  for (uint64_t v : history) codec::put_u64(&history_value, v);
  batch.Put(cf(kMeta), "active_adapter", active_value);
  batch.Put(cf(kMeta), "adapter_history", history_value);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  EMBEDAPT_RETURN_IF_ERROR(from_rocksdb(db_->Write(sync, &batch), path_ + ": persisting the active adapter"));
  adapter_history_ = std::move(history);
  {
    std::unique_lock<std::shared_mutex> exclusive(mu_);
    active_ = std::move(adapter);
    active_version_ = version;
    active_error_ = Status::OK();
    doc_adapter_version_ = doc_version;
    if (rebuilt) index_ = std::move(rebuilt);
  }
  // The snapshot on disk was built under the old document side; replace it
  // so the next open need not rebuild.
  return rebuilt ? snapshot_locked() : Status::OK();
}

bool StoreImpl::live_index_serves(const Adapter* adapter, uint64_t* doc_version) const {
  std::shared_lock<std::shared_mutex> read(mu_);
  const bool maps_docs = adapter != nullptr && adapter->side() == AdapterSide::kBoth;
  *doc_version = doc_adapter_version_;
  return doc_adapter_version_ == 0 ? !maps_docs : adapter == active_.get();
}

Status StoreImpl::view(std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out) const {
  if (adapter) {  // a caller's adapter: its shape is known, the embedder it was trained on is not
    AdapterConfig shape;
    shape.in_dim = adapter->in_dim();
    shape.out_dim = adapter->out_dim();
    EMBEDAPT_RETURN_IF_ERROR(check_adapter_fits(shape, options_.dim, "").WithContext("view"));
  }
  std::unique_ptr<VectorIndex> own;
  uint64_t live_doc_version = 0;
  if (!live_index_serves(adapter.get(), &live_doc_version)) {
    const bool maps_docs = adapter != nullptr && adapter->side() == AdapterSide::kBoth;
    EMBEDAPT_RETURN_IF_ERROR(build_index(maps_docs ? adapter.get() : nullptr, &own));
  }
  *out = std::make_unique<AdapterView>(this, std::move(adapter), std::move(own), live_doc_version);
  return Status::OK();
}

Status import_adapter_dir(Store* store, const std::string& dir, bool trust_code, uint64_t* version) {
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store->stats(&stats));
  AdapterVersion v;
  EMBEDAPT_RETURN_IF_ERROR(read_adapter_dir(dir, &v.config_json, &v.weights));
  AdapterConfig config;
  EMBEDAPT_RETURN_IF_ERROR(parse_adapter_config(v.config_json, &config).WithContext(dir));
  EMBEDAPT_RETURN_IF_ERROR(check_adapter_fits(config, stats.dim, stats.embedder).WithContext(dir));
  std::unique_ptr<Adapter> adapter;  // the weights must load too
  AdapterLoadOptions load_options;
  load_options.trust_code = trust_code;
  EMBEDAPT_RETURN_IF_ERROR(load_adapter(v.config_json, v.weights, load_options, &adapter).WithContext(dir));
  v.metrics_json = nlohmann::json{{"imported_from", dir}}.dump();
  EMBEDAPT_RETURN_IF_ERROR(store->put_adapter(&v));
  *version = v.version;
  return Status::OK();
}

}  // namespace embedapt
