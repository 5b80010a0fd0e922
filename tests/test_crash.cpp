// Crash safety, tested the way RocksDB's crash test does it: a writer process
// is killed with SIGKILL at random moments; after each kill the store is
// reopened and must hold every acknowledged write, nothing half-applied (a
// batch is all or nothing), and an index that agrees with RocksDB.
//
// The writer is this test binary re-executed with the hidden tag
// [.crash_writer] (a fresh process, not a fork of one with threads). It
// applies a deterministic sequence of operations, op(i) derived from i alone,
// and acknowledges each over a pipe once the store returned ok. Records carry
// metadata and some operations remove every record of a metadata group
// (remove_matching), so kills land inside those writes too.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "embedapt/store.h"

namespace fs = std::filesystem;
using namespace embedapt;

namespace {

constexpr int kDim = 8;
constexpr int kIds = 150;

constexpr int kGroups = 4;

struct Op {
  std::vector<Record> upserts;  // empty: a removal
  std::string remove_id;
  int remove_group = -1;  // >= 0: remove every record whose metadata has this "g"
};

std::string group_filter(int group) { return "{\"g\":" + std::to_string(group) + "}"; }

Op make_op(uint64_t i) {
  std::mt19937_64 rng(i * 0x9E3779B97F4A7C15ull + 1);
  Op op;
  if (rng() % 5 == 0) {
    op.remove_id = "k" + std::to_string(rng() % kIds);
    return op;
  }
  if (rng() % 12 == 0) {
    op.remove_group = static_cast<int>(rng() % kGroups);
    return op;
  }
  std::normal_distribution<float> normal;
  size_t n = 1 + rng() % 8;
  for (size_t j = 0; j < n; ++j) {
    Record r;
    r.id = "k" + std::to_string(rng() % kIds);
    for (int d = 0; d < kDim; ++d) r.vector.push_back(normal(rng));
    r.payload = "op" + std::to_string(i);
    // As the store returns it: keys sorted, no spaces.
    r.metadata = "{\"g\":" + std::to_string(rng() % kGroups) + ",\"tags\":[\"op" + std::to_string(i) + "\"]}";
    op.upserts.push_back(std::move(r));
  }
  return op;
}

using State = std::map<std::string, Record>;

int group_of(const Record& r) { return r.metadata[5] - '0'; }  // {"g":N,...

void apply_op(const Op& op, State* state) {
  if (op.remove_group >= 0) {
    for (auto it = state->begin(); it != state->end();) {
      it = group_of(it->second) == op.remove_group ? state->erase(it) : std::next(it);
    }
    return;
  }
  if (op.upserts.empty()) {
    state->erase(op.remove_id);
    return;
  }
  for (const Record& r : op.upserts) (*state)[r.id] = r;
}

// The store's records, or a failed check.
State read_state(Store* store) {
  State state;
  REQUIRE(store
              ->scan([&](const Record& r) {
                state[r.id] = r;
                return true;
              })
              .ok());
  return state;
}

bool same(const State& a, const State& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [id, r] : a) {
    auto it = b.find(id);
    if (it == b.end() || it->second.vector != r.vector || it->second.payload != r.payload ||
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

// Runs the writer from op `start` until killed; returns the pipe's read end.
pid_t spawn_writer(const std::string& dir, const std::string& spec, uint64_t start, int* ack_fd) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    setenv("EMBEDAPT_CRASH_DIR", dir.c_str(), 1);
    setenv("EMBEDAPT_CRASH_SPEC", spec.c_str(), 1);
    setenv("EMBEDAPT_CRASH_START", std::to_string(start).c_str(), 1);
    setenv("EMBEDAPT_CRASH_ACK_FD", std::to_string(fds[1]).c_str(), 1);
    execl("/proc/self/exe", "test_crash", "[.crash_writer]", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  *ack_fd = fds[0];
  return pid;
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

void crash_rounds(const std::string& spec, int rounds, uint32_t seed) {
  std::string dir =
      (fs::temp_directory_path() / ("embedapt-crash-" + std::to_string(getpid()) + "-" + spec)).string();
  fs::remove_all(dir);
  std::mt19937 rng(seed);
  State state;
  uint64_t next_op = 0;
  size_t replays = 0;
  for (int round = 0; round < rounds; ++round) {
    int fd = -1;
    pid_t pid = spawn_writer(dir, spec, next_op, &fd);
    // Kill after a random number of acknowledgements plus a random delay, so
    // the kill lands anywhere: mid-batch, mid-snapshot, mid-journal-trim.
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
    REQUIRE(WIFSIGNALED(status));
    while (read_ack(fd, &op)) {  // acknowledged before the kill
      acked = op;
      any = true;
    }
    close(fd);
    REQUIRE(any);  // the writer made progress

    for (uint64_t i = next_op; i <= acked; ++i) apply_op(make_op(i), &state);
    State with_inflight = state;
    apply_op(make_op(acked + 1), &with_inflight);

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
    REQUIRE(stats.count == state.size());
    replays += stats.recovery.find("replayed") != std::string::npos;
    for (const auto& [id, record] : state) {  // every record is searchable
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
      for (const auto& [id, record] : state) {
        if (group_of(record) == group) expected.push_back(id);
      }
      for (const Hit& hit : hits) got.push_back(hit.id);
      std::sort(got.begin(), got.end());
      INFO("round " << round << ": group " << group);
      REQUIRE(got == expected);
    }
  }
  CHECK(replays > 0);  // at least some rounds recovered through the journal
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
  for (uint64_t i = start; i < start + 100000; ++i) {
    Op op = make_op(i);
    Status s;
    if (op.remove_group >= 0) {
      Filter filter;
      REQUIRE(Filter::parse(group_filter(op.remove_group), &filter).ok());
      s = store->remove_matching(filter, nullptr);
    } else {
      s = op.upserts.empty() ? store->remove(op.remove_id) : store->upsert_batch(op.upserts);
    }
    REQUIRE((s.ok() || s.code() == Code::kNotFound));
    REQUIRE(write(fd, &i, sizeof i) == sizeof i);
  }
}

TEST_CASE("Killed writers lose no acknowledged write (Flat, 20 kills)", "[crash]") {
  crash_rounds("Flat", 20, 2024);
}

TEST_CASE("Killed writers lose no acknowledged write (HNSW32 with tombstones, 8 kills)", "[crash]") {
  crash_rounds("HNSW32", 8, 7);
}
