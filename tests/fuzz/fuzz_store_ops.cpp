// The store as a state machine: the input is a program of upserts, removes,
// query logging, adapter activations and rollbacks, flushes and reopens on a
// real store (RocksDB + FAISS on disk). The oracle: verify() passes after
// every step, and the store holds exactly the records a plain map says it
// should, with the same vectors and payloads. The first byte picks the index.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/common/safetensors.h"
#include "embedapt/store.h"

namespace {

using namespace embedapt;

constexpr int kDim = 4;
constexpr const char* kEmbedder = "fuzz";

// Reads the program; past its end every read is 0.
struct Program {
  const uint8_t* data;
  size_t size;
  size_t at = 0;
  bool done() const { return at >= size; }
  uint8_t byte() { return at < size ? data[at++] : 0; }
  // A component in [-2, 2) that is never 0, so no vector is zero.
  float component() { return (int(byte() % 16) - 8) / 4.0f + 0.125f; }
};

void check(bool ok, const char* what, const Status& s = Status::OK()) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_store_ops: %s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}

void check_ok(const Status& s, const char* what) { check(s.ok(), what, s); }

std::string adapter_config(bool both) {
  return std::string("{\"kind\":\"linear\",\"in_dim\":4,\"out_dim\":4,\"side\":\"") +
         (both ? "both" : "query") + "\",\"embedder\":\"" + kEmbedder + "\"}";
}

// A diagonal linear adapter with scales from the program (never 0).
std::string adapter_weights(Program& p) {
  std::vector<float> w(kDim * kDim, 0.0f);
  for (int i = 0; i < kDim; ++i) w[i * kDim + i] = 0.25f + (p.byte() % 8) / 4.0f;
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(w, {kDim, kDim});
  return serialize_safetensors(tensors);
}

// Every record the model holds is stored as it says, and nothing else is.
void compare(const Store& store, const std::map<std::string, Record>& model) {
  StoreStats stats;
  check_ok(store.stats(&stats), "stats");
  check(stats.count == model.size(), "index count differs from the model");
  size_t scanned = 0;
  check_ok(store.scan([&](const Record& r) {
    auto it = model.find(r.id);
    check(it != model.end(), "scan returned a record the model does not hold");
    check(it->second.vector == r.vector && it->second.payload == r.payload, "record differs");
    ++scanned;
    return true;
  }),
           "scan");
  check(scanned == model.size(), "scan count differs from the model");
  check_ok(store.verify(), "verify");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir =
      (std::filesystem::temp_directory_path() / ("embedapt-fuzz-store-" + std::to_string(getpid()))).string();
  static const char* const kSpecs[] = {"Flat", "HNSW8", "IVF2,Flat"};
  std::filesystem::remove_all(dir);
  Program p{data, size};
  Options options;
  options.dim = kDim;
  options.index_spec = kSpecs[p.byte() % 3];
  options.snapshot_every = 1 + p.byte() % 64;
  options.query_log_max_hits = p.byte() % 8;
  std::unique_ptr<Store> store;
  check_ok(Store::open(dir, options, &store), "create");
  check_ok(store->set_embedder(kEmbedder), "set_embedder");
  std::map<std::string, Record> model;
  for (int steps = 0; !p.done() && steps < 64; ++steps) {
    const uint8_t op = p.byte();
    switch (op % 8) {
      case 0:
      case 1: {  // a batch of upserts; ids repeat within and across batches
        std::vector<Record> batch(1 + p.byte() % 8);
        for (Record& r : batch) {
          r.id = "id" + std::to_string(p.byte() % 24);
          for (int i = 0; i < kDim; ++i) r.vector.push_back(p.component());
          r.payload = std::string(p.byte() % 4, 'p');
        }
        check_ok(store->upsert_batch(batch), "upsert_batch");
        for (const Record& r : batch) model[r.id] = r;
        break;
      }
      case 2: {
        const std::string id = "id" + std::to_string(p.byte() % 24);
        Status s = store->remove(id);
        check(s.ok() == (model.erase(id) == 1), "remove disagrees with the model", s);
        break;
      }
      case 3: {  // a search returns live records only, best first
        std::vector<float> q;
        for (int i = 0; i < kDim; ++i) q.push_back(p.component());
        std::vector<Hit> hits;
        check_ok(store->search(q.data(), kDim, 1 + p.byte() % 8, &hits), "search");
        for (const Hit& h : hits) check(model.count(h.id) == 1, "search returned a removed record");
        uint64_t query_id = 0;
        check_ok(store->log_query(q.data(), kDim, {}, &query_id), "log_query");
        if (!hits.empty()) check_ok(store->log_hit(query_id, hits[0].id), "log_hit");
        break;
      }
      case 4: {
        AdapterVersion v;
        v.config_json = adapter_config(p.byte() % 2 == 1);
        v.weights = adapter_weights(p);
        check_ok(store->put_adapter(&v), "put_adapter");
        check_ok(store->activate_adapter(v.version), "activate_adapter");
        break;
      }
      case 5: {
        Status s = store->rollback_adapter();
        check(s.ok() || s.code() == Code::kFailedPrecondition, "rollback", s);
        break;
      }
      case 6:
        check_ok(store->flush(), "flush");
        break;
      default:  // close and reopen
        store.reset();
        check_ok(Store::open(dir, Options(), &store), "reopen");
        break;
    }
    compare(*store, model);
  }
  store.reset();
  check_ok(Store::open(dir, Options(), &store), "final reopen");
  compare(*store, model);
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
