// Crash safety, tested the way RocksDB's crash test does it: a writer process
// is killed with SIGKILL at random moments; after each kill the store is
// reopened and must hold every acknowledged write, nothing half-applied (a
// batch is all or nothing), and an index that agrees with RocksDB.
//
// Every kind of write is in the mix: upsert batches and removes (into Flat,
// HNSW and IVF indexes), query and hit logging, adapter activations (query
// side, and both sides, which rebuilds the index) and rollbacks, and flushes
// (snapshot writing and journal trims). Before some reopens a recovering
// process is killed too, in the middle of its replay or rebuild. A new kind
// of write is one more OpKind: make_op draws it, apply_op says what it does to
// the expected state, run_op performs it in the writer.
//
// The writer is this test binary re-executed with the hidden tag
// [.crash_writer] (a fresh process, not a fork of one with threads). It
// applies a deterministic sequence of operations, op(i) derived from i alone,
// and acknowledges each over a pipe once the store returned ok. Records carry
// metadata and some operations remove every record of a metadata group
// (remove_matching), so kills land inside those writes too.
//
// `make crashtest` runs the same tests with EMBEDAPT_CRASH_SCALE=8: eight
// times the kills of the short version `make test` runs.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/common/safetensors.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"

namespace fs = std::filesystem;
using namespace embedapt;
extern char** environ;

namespace {

constexpr int kDim = 8;
constexpr int kIds = 300;  // enough live records for IVF2,Flat to train (78 vectors)
constexpr const char* kEmbedder = "crash-test";
constexpr int kGroups = 4;

enum class OpKind { kUpsert, kRemove, kRemoveGroup, kLogHit, kActivate, kRollback, kFlush };

struct Op {
  OpKind kind = OpKind::kUpsert;
  std::vector<Record> upserts;
  std::string id;            // kRemove: the record; kLogHit: the hit's doc id
  int group = -1;            // kRemoveGroup: every record whose metadata has this "g"
  std::vector<float> query;  // kLogHit
  bool both_sides = false;   // kActivate
  std::vector<float> scale;  // kActivate: a diagonal linear adapter
};

std::string group_filter(int group) { return "{\"g\":" + std::to_string(group) + "}"; }

Op make_op(uint64_t i) {
  std::mt19937_64 rng(i * 0x9E3779B97F4A7C15ull + 1);
  std::normal_distribution<float> normal;
  Op op;
  const uint64_t roll = rng() % 100;
  if (roll < 14) {
    op.kind = OpKind::kRemove;
    op.id = "k" + std::to_string(rng() % kIds);
  } else if (roll < 24) {
    op.kind = OpKind::kLogHit;
    op.id = "hit" + std::to_string(i);
    for (int d = 0; d < kDim; ++d) op.query.push_back(normal(rng));
  } else if (roll < 27) {
    op.kind = OpKind::kActivate;
    op.both_sides = rng() % 2 == 0;
    for (int d = 0; d < kDim; ++d) op.scale.push_back(0.5f + (rng() % 100) / 50.0f);
  } else if (roll < 28) {
    op.kind = OpKind::kRollback;
  } else if (roll < 30) {
    op.kind = OpKind::kFlush;
  } else if (roll < 33) {
    op.kind = OpKind::kRemoveGroup;
    op.group = static_cast<int>(rng() % kGroups);
  } else {
    size_t n = 1 + rng() % 8;
    for (size_t j = 0; j < n; ++j) {
      Record r;
      r.id = "k" + std::to_string(rng() % kIds);
      for (int d = 0; d < kDim; ++d) r.vector.push_back(normal(rng));
      r.payload = "op" + std::to_string(i);
      // As the store returns it: keys sorted, no spaces.
      r.metadata =
          "{\"g\":" + std::to_string(rng() % kGroups) + ",\"tags\":[\"op" + std::to_string(i) + "\"]}";
      op.upserts.push_back(std::move(r));
    }
  }
  return op;
}

// What the store must hold after a sequence of ops.
struct State {
  std::map<std::string, Record> records;
  std::set<std::string> hits;          // doc ids of logged hits (each op logs a distinct one)
  std::vector<uint64_t> active = {0};  // ops whose adapter was activated, in history order; 0: none
};

int group_of(const Record& r) { return r.metadata[5] - '0'; }  // {"g":N,...

void apply_op(uint64_t i, const Op& op, State* state) {
  switch (op.kind) {
    case OpKind::kUpsert:
      for (const Record& r : op.upserts) state->records[r.id] = r;
      break;
    case OpKind::kRemove:
      state->records.erase(op.id);
      break;
    case OpKind::kRemoveGroup:
      for (auto it = state->records.begin(); it != state->records.end();) {
        it = group_of(it->second) == op.group ? state->records.erase(it) : std::next(it);
      }
      break;
    case OpKind::kLogHit:
      state->hits.insert(op.id);
      break;
    case OpKind::kActivate:
      state->active.push_back(i);
      break;
    case OpKind::kRollback:
      if (state->active.size() > 1) state->active.pop_back();
      break;
    case OpKind::kFlush:
      break;
  }
}

std::string adapter_config(bool both_sides) {
  return std::string("{\"kind\":\"linear\",\"in_dim\":") + std::to_string(kDim) +
         ",\"out_dim\":" + std::to_string(kDim) + ",\"side\":\"" + (both_sides ? "both" : "query") +
         "\",\"embedder\":\"" + kEmbedder + "\"}";
}

std::string adapter_weights(const std::vector<float>& scale) {
  std::vector<float> w(size_t(kDim) * kDim, 0.0f);
  for (int d = 0; d < kDim; ++d) w[d * kDim + d] = scale[d];
  TensorMap tensors;
  tensors["linear.weight"] = floats_to_tensor(w, {kDim, kDim});
  return serialize_safetensors(tensors);
}

// Performs op `i` in the writer; ok() when it is acknowledged.
Status run_op(uint64_t i, const Op& op, Store* store) {
  switch (op.kind) {
    case OpKind::kUpsert:
      return store->upsert_batch(op.upserts);
    case OpKind::kRemove: {
      Status s = store->remove(op.id);
      return s.code() == Code::kNotFound ? Status::OK() : s;
    }
    case OpKind::kRemoveGroup: {
      Filter filter;
      EMBEDAPT_RETURN_IF_ERROR(Filter::parse(group_filter(op.group), &filter));
      return store->remove_matching(filter, nullptr);
    }
    case OpKind::kLogHit: {
      uint64_t query_id = 0;
      EMBEDAPT_RETURN_IF_ERROR(store->log_query(op.query.data(), kDim, {op.id}, &query_id));
      return store->log_hit(query_id, op.id);
    }
    case OpKind::kActivate: {
      AdapterVersion v;
      v.config_json = adapter_config(op.both_sides);
      v.weights = adapter_weights(op.scale);
      v.metrics_json = "{\"op\":" + std::to_string(i) + "}";
      EMBEDAPT_RETURN_IF_ERROR(store->put_adapter(&v));
      return store->activate_adapter(v.version);
    }
    case OpKind::kRollback: {
      Status s = store->rollback_adapter();
      return s.code() == Code::kFailedPrecondition ? Status::OK() : s;
    }
    case OpKind::kFlush:
      return store->flush();
  }
  return Status::Internal("unknown op");
}

// The store's state, or a failed check.
State read_state(Store* store) {
  State state;
  REQUIRE(store
              ->scan([&](const Record& r) {
                state.records[r.id] = r;
                return true;
              })
              .ok());
  REQUIRE(store
              ->scan_log([&](const LoggedQuery& q) {
                state.hits.insert(q.hit_ids.begin(), q.hit_ids.end());
                return true;
              })
              .ok());
  // The activation history, newest last, as op indices (from each version's metrics).
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  std::vector<AdapterVersion> versions;
  REQUIRE(store->list_adapters(&versions).ok());
  std::map<uint64_t, uint64_t> op_of = {{0, 0}};
  for (const AdapterVersion& v : versions) {
    op_of[v.version] = std::stoull(v.metrics_json.substr(v.metrics_json.find(':') + 1));
  }
  state.active = {op_of.at(stats.active_adapter)};
  return state;
}

// Records and hits must match exactly; of the adapter history only the active
// version is visible through the public API.
bool same(const State& found, const State& expected) {
  if (found.records.size() != expected.records.size() || found.hits != expected.hits) return false;
  if (found.active.back() != expected.active.back()) return false;
  for (const auto& [id, r] : found.records) {
    auto it = expected.records.find(id);
    if (it == expected.records.end() || it->second.vector != r.vector || it->second.payload != r.payload ||
        it->second.metadata != r.metadata) {
      return false;
    }
  }
  return true;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Runs this binary with `tag` and `vars` added to the environment; the
// child writes acknowledgements to EMBEDAPT_CRASH_ACK_FD, whose read end is
// returned in *ack_fd.
pid_t spawn_child(const char* tag, std::vector<std::string> vars, int* ack_fd) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  vars.push_back("EMBEDAPT_CRASH_ACK_FD=" + std::to_string(fds[1]));
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  std::vector<char*> envp;
  envp.reserve(vars.size() + 1);
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  const char* argv[] = {"test_crash", tag, nullptr};
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, const_cast<char**>(argv), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(spawned == 0);
  close(fds[1]);
  *ack_fd = fds[0];
  return pid;
}

// Runs the writer from op `start` until killed.
pid_t spawn_writer(const std::string& dir, const std::string& spec, uint64_t start, int* ack_fd) {
  return spawn_child("[.crash_writer]",
                     {"EMBEDAPT_CRASH_DIR=" + dir, "EMBEDAPT_CRASH_SPEC=" + spec,
                      "EMBEDAPT_CRASH_START=" + std::to_string(start)},
                     ack_fd);
}

bool read_ack(int fd, uint64_t* op) {
  size_t got = 0;
  char* p = reinterpret_cast<char*>(op);
  while (got < sizeof *op) {
    ssize_t n = read(fd, p + got, sizeof *op - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

int crash_scale() {
  const std::string scale = env("EMBEDAPT_CRASH_SCALE");
  return scale.empty() ? 1 : std::max(1, std::stoi(scale));
}

void crash_rounds(const std::string& spec, int rounds, uint32_t seed) {
  rounds *= crash_scale();
  std::string dir =
      (fs::temp_directory_path() / ("embedapt-crash-" + std::to_string(getpid()) + "-" + spec)).string();
  fs::remove_all(dir);
  std::mt19937 rng(seed);
  State state;
  uint64_t next_op = 0;
  size_t replays = 0, recovery_kills = 0, acked_ops = 0;
  for (int round = 0; round < rounds; ++round) {
    int fd = -1;
    pid_t pid = spawn_writer(dir, spec, next_op, &fd);
    // Kill after a random number of acknowledgements plus a random delay, so
    // the kill lands anywhere: mid-batch, mid-snapshot, mid-journal-trim,
    // mid-activation.
    uint64_t acked = next_op, op = 0;
    bool any = false;
    int wait_acks = 1 + rng() % 40;
    for (int i = 0; i < wait_acks && read_ack(fd, &op); ++i) {
      acked = op;
      any = true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    INFO("round " << round << ": the writer exited by itself (status " << status << ")");
    REQUIRE(WIFSIGNALED(status));
    while (read_ack(fd, &op)) {  // acknowledged before the kill
      acked = op;
      any = true;
    }
    close(fd);
    REQUIRE(any);  // the writer made progress
    acked_ops += acked + 1 - next_op;

    for (uint64_t i = next_op; i <= acked; ++i) apply_op(i, make_op(i), &state);
    State with_inflight = state;
    apply_op(acked + 1, make_op(acked + 1), &with_inflight);

    if (rng() % 3 == 0) {  // kill a recovery (replay or rebuild) too, once it has begun
      pid = spawn_child("[.crash_recoverer]", {"EMBEDAPT_CRASH_DIR=" + dir}, &fd);
      read_ack(fd, &op);  // the child is about to open the store
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      close(fd);
      recovery_kills += WIFSIGNALED(status);
    }

    std::unique_ptr<Store> store;
    Status s = Store::open(dir, Options(), &store);
    INFO("round " << round << ": " << s.ToString());
    REQUIRE(s.ok());
    Status verified = store->verify();
    INFO(verified.ToString());
    REQUIRE(verified.ok());
    State found = read_state(store.get());
    if (same(found, state)) {
      next_op = acked + 1;
    } else {
      REQUIRE(same(found, with_inflight));  // else: an acked write lost or a batch half-applied
      state = with_inflight;
      next_op = acked + 2;
    }
    StoreStats stats;
    REQUIRE(store->stats(&stats).ok());
    REQUIRE(stats.count == state.records.size());
    replays += stats.recovery.find("replayed") != std::string::npos;
    // Every record is found by its own vector, unless a query-side adapter
    // maps queries elsewhere than the documents.
    AdapterVersion active;
    const bool query_side_only = stats.active_adapter != 0 &&
                                 store->get_adapter(stats.active_adapter, &active).ok() &&
                                 active.config_json.find("\"query\"") != std::string::npos;
    for (const auto& [id, record] : state.records) {
      if (query_side_only) break;
      std::vector<Hit> hits;
      REQUIRE(store->search(record.vector.data(), kDim, {3}, &hits).ok());
      bool found_it = false;
      for (const Hit& h : hits) found_it |= h.id == id;
      INFO("round " << round << ": " << id << " not found by its own vector");
      REQUIRE(found_it);
    }
    const std::vector<float> probe(kDim, 0.5f);
    for (int group = 0; group < kGroups; ++group) {  // the metadata index finds each group exactly
      SearchOptions options(kIds);
      REQUIRE(Filter::parse(group_filter(group), &options.filter).ok());
      std::vector<Hit> hits;
      REQUIRE(store->search(probe.data(), kDim, options, &hits).ok());
      std::vector<std::string> expected, got;
      for (const auto& [id, record] : state.records) {
        if (group_of(record) == group) expected.push_back(id);
      }
      for (const Hit& hit : hits) got.push_back(hit.id);
      std::sort(got.begin(), got.end());
      INFO("round " << round << ": group " << group);
      REQUIRE(got == expected);
    }
  }
  CHECK(replays > 0);  // at least some rounds recovered through the journal
  // The figures `make crashtest` reports (a failed check above stops before).
  std::printf(
      "crashtest %s: %d writer kills, %zu recovery kills, %zu acknowledged ops, 0 lost, 0 failed verifies\n",
      spec.c_str(), rounds, recovery_kills, acked_ops);
  fs::remove_all(dir);
}

}  // namespace

TEST_CASE("crash writer", "[.crash_writer]") {
  std::string dir = env("EMBEDAPT_CRASH_DIR");
  REQUIRE(!dir.empty());
  int fd = std::stoi(env("EMBEDAPT_CRASH_ACK_FD"));
  uint64_t start = std::stoull(env("EMBEDAPT_CRASH_START"));
  Options options;
  options.dim = kDim;
  options.metric = Metric::kL2;
  options.index_spec = env("EMBEDAPT_CRASH_SPEC");
  options.snapshot_every = 16;  // snapshots and journal trims happen often enough to be hit
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(dir, options, &store).ok());
  REQUIRE(store->set_embedder(kEmbedder).ok());
  for (uint64_t i = start; i < start + 100000; ++i) {
    Status s = run_op(i, make_op(i), store.get());
    INFO("op " << i << ": " << s.ToString());
    REQUIRE(s.ok());
    REQUIRE(write(fd, &i, sizeof i) == sizeof i);
  }
}

TEST_CASE("crash recoverer", "[.crash_recoverer]") {
  int fd = std::stoi(env("EMBEDAPT_CRASH_ACK_FD"));
  uint64_t starting = 0;
  REQUIRE(write(fd, &starting, sizeof starting) == sizeof starting);
  std::unique_ptr<Store> store;
  REQUIRE(Store::open(env("EMBEDAPT_CRASH_DIR"), Options(), &store).ok());
}

TEST_CASE("Killed writers lose no acknowledged write (Flat, 12 kills)", "[crash]") {
  crash_rounds("Flat", 12, 2024);
}

TEST_CASE("Killed writers lose no acknowledged write (HNSW32 with tombstones, 8 kills)", "[crash]") {
  crash_rounds("HNSW32", 8, 7);
}

TEST_CASE("Killed writers lose no acknowledged write (IVF2,Flat, staged then trained, 8 kills)", "[crash]") {
  crash_rounds("IVF2,Flat", 8, 99);
}
