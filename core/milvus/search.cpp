// Searching a synced collection through an adapter: milvus_view() for a
// chosen adapter (the evaluator), milvus_search() for the active one.
#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "core/common/http.h"
#include "core/milvus/client.h"
#include "embedapt/milvus.h"

namespace embedapt {
namespace {

// Milvus's REST search takes one vector per request, so a batch goes out on
// a few connections at once.
constexpr size_t kConcurrentRequests = 4;

class MilvusView final : public SearchView {
 public:
  MilvusView(const Store& store, MilvusClient client, std::shared_ptr<const Adapter> adapter, Metric metric,
             int dim)
      : store_(store), client_(std::move(client)), adapter_(std::move(adapter)), metric_(metric), dim_(dim) {}

  Status search(const float* queries, size_t n, const SearchOptions& options,
                std::vector<std::vector<Hit>>* results) const override {
    const int k = options.k;
    if (!options.filter.matches_all()) {
      return Status::NotSupported("search: a Milvus view does not apply metadata filters");
    }
    if (options.ef_search != 0 || options.nprobe != 0) {
      return Status::NotSupported("search: a Milvus view searches with the server's ef_search and nprobe");
    }
    if (k < 1) return Status::InvalidArgument("search: k must be at least 1, got " + std::to_string(k));
    std::vector<float> mapped;
    EMBEDAPT_RETURN_IF_ERROR(to_collection_space(adapter_.get(), metric_, queries, n, dim_, &mapped));
    const int out_dim = adapter_ ? adapter_->out_dim() : dim_;
    results->assign(n, {});
    std::vector<Status> failures(n);
    std::atomic<size_t> next{0};
    // An exception escaping a thread ends the process: each query's becomes its Status.
    auto worker = [&] {
      std::vector<MilvusHit> hits;
      for (size_t q = next++; q < n; q = next++) {
        try {
          failures[q] = client_.search(mapped.data() + q * size_t(out_dim), out_dim, k, &hits);
          if (!failures[q].ok()) continue;
          for (const MilvusHit& hit : hits) (*results)[q].push_back({hit.id, hit.distance, "", ""});
        } catch (const std::exception& e) {
          failures[q] = Status::Internal(std::string("Milvus search: ") + e.what());
        } catch (...) {
          failures[q] = Status::Internal("Milvus search: unknown exception");
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t t = 0; t < std::min(n, kConcurrentRequests); ++t) threads.emplace_back(worker);
    for (std::thread& t : threads) t.join();
    for (const Status& s : failures) EMBEDAPT_RETURN_IF_ERROR(s);
    for (std::vector<Hit>& hits : *results) EMBEDAPT_RETURN_IF_ERROR(drop_unstored(&hits));
    return Status::OK();
  }

 private:
  // The store is the source of truth: a record removed from it stays in the
  // collection until the next sync, and an id it never held is the server's
  // error. Neither is served (nor logged as shown, nor scored by eval).
  Status drop_unstored(std::vector<Hit>* hits) const {
    Record record;
    std::vector<Hit> kept;
    for (Hit& hit : *hits) {
      Status s = store_.get(hit.id, &record);
      if (s.code() == Code::kNotFound || s.code() == Code::kInvalidArgument) continue;
      EMBEDAPT_RETURN_IF_ERROR(s);
      kept.push_back(std::move(hit));
    }
    *hits = std::move(kept);
    return Status::OK();
  }

  const Store& store_;
  const MilvusClient client_;
  const std::shared_ptr<const Adapter> adapter_;
  const Metric metric_;
  const int dim_;  // raw query dim
};

}  // namespace

Status milvus_view(const Store& store, const MilvusCollection& collection,
                   std::shared_ptr<const Adapter> adapter, std::unique_ptr<SearchView>* out) {
  MilvusClient client;
  EMBEDAPT_RETURN_IF_ERROR(MilvusClient::make(collection, &client));
  const std::string cursor_name = sync_cursor_name(collection);
  JournalCursor cursor;
  MilvusSyncState state;
  Status found = get_sync_cursor(store, collection, &cursor);
  if (found.code() == Code::kNotFound ||
      (found.ok() && parse_sync_state(cursor.state, &state) && !state.complete)) {
    return Status::FailedPrecondition("this store was never fully synced to Milvus collection " +
                                      collection.name + " at " + printable_url(collection.uri) +
                                      ": run a Milvus sync first");
  }
  EMBEDAPT_RETURN_IF_ERROR(found);
  if (!parse_sync_state(cursor.state, &state)) {
    return Status::Corruption("journal cursor '" + cursor_name + "' holds an unreadable state");
  }
  const bool maps_documents = adapter && adapter->side() == AdapterSide::kBoth;
  if (maps_documents != (state.doc_adapter != 0)) {
    return Status::FailedPrecondition(
        "Milvus collection " + collection.name + " holds " +
        (state.doc_adapter ? "documents mapped by adapter v" + std::to_string(state.doc_adapter)
                           : "raw documents") +
        (maps_documents ? ", the adapter maps documents" : ", the adapter maps queries only") +
        ": sync the collection under this adapter first");
  }
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));
  if (adapter && adapter->in_dim() != stats.dim) {
    return Status::FailedPrecondition("adapter takes " + std::to_string(adapter->in_dim()) +
                                      "-dim vectors, the store holds " + std::to_string(stats.dim));
  }
  *out = std::make_unique<MilvusView>(store, std::move(client), std::move(adapter), stats.metric, stats.dim);
  return Status::OK();
}

Status milvus_search(const Store& store, const MilvusCollection& collection, const float* queries, size_t n,
                     int k, bool trust_code, std::vector<std::vector<Hit>>* results) {
  StoreStats stats;
  EMBEDAPT_RETURN_IF_ERROR(store.stats(&stats));
  std::shared_ptr<const Adapter> active;
  if (stats.active_adapter != 0) {
    AdapterVersion version;
    EMBEDAPT_RETURN_IF_ERROR(store.get_adapter(stats.active_adapter, &version));
    std::unique_ptr<Adapter> loaded;
    AdapterLoadOptions load;
    load.trust_code = trust_code;
    EMBEDAPT_RETURN_IF_ERROR(load_adapter(version.config_json, version.weights, load, &loaded)
                                 .WithContext("adapter v" + std::to_string(stats.active_adapter)));
    if (loaded->side() == AdapterSide::kBoth) {
      JournalCursor cursor;
      MilvusSyncState state;
      if (get_sync_cursor(store, collection, &cursor).ok() && parse_sync_state(cursor.state, &state) &&
          state.doc_adapter != stats.active_adapter) {
        return Status::FailedPrecondition("the active adapter v" + std::to_string(stats.active_adapter) +
                                          " maps documents, and Milvus collection " + collection.name +
                                          " was not synced under it: run a Milvus sync");
      }
    }
    active = std::move(loaded);
  }
  std::unique_ptr<SearchView> view;
  EMBEDAPT_RETURN_IF_ERROR(milvus_view(store, collection, std::move(active), &view));
  return view->search(queries, n, k, results);
}

}  // namespace embedapt
