// The Milvus client and the milvus CLI against a fake Milvus proxy on
// loopback whose answers each test chooses: hostile or malformed answers are
// errors (never crashes or wrong results), and what the user typed is checked
// before anything is sent or written. The real server is test_milvus's.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/npy.h"
#include "core/milvus/client.h"
#include "embedapt/milvus.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/cli_run.h"
#include "tests/support/http_server.h"
#include "tests/support/store.h"
#include "tests/support/temp_dir.h"

namespace embedapt {
namespace {

using testing::CliRun;
using testing::HttpExchange;
using testing::HttpReply;
using testing::HttpTestServer;
using testing::run_cli;

constexpr int kDim = 4;

// Milvus's REST API as far as a synced collection's searches need it: the
// collection is loaded, and "search", "query" and the others answer what the
// test set, by default success with no rows.
class FakeMilvus {
 public:
  FakeMilvus() : server_([this](const HttpExchange& request) { return reply(request); }) {}

  // `endpoint`: the path after /v1/vector/, e.g. "search" or "collections/describe".
  void answer(const std::string& endpoint, HttpReply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_[endpoint] = std::move(reply);
  }
  void answer(const std::string& endpoint, const std::string& body) {
    answer(endpoint, HttpReply::json(200, body));
  }
  std::string uri() const { return server_.base_url(); }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  HttpReply reply(const HttpExchange& request) {
    std::string endpoint = request.path.substr(std::string("/v1/vector/").size());
    endpoint = endpoint.substr(0, endpoint.find('?'));
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request.method + " " + request.path + " " + request.body);
    auto it = replies_.find(endpoint);
    if (it != replies_.end()) return it->second;
    if (endpoint == "collections/describe")
      return HttpReply::json(200, R"({"code":200,"data":{"load":"LoadStateLoaded"}})");
    return HttpReply::json(200, R"({"code":200,"data":[]})");
  }

  mutable std::mutex mu_;
  std::map<std::string, HttpReply> replies_;
  std::vector<std::string> requests_;
  HttpTestServer server_;  // last: stopped before the replies it reads go
};

// A store holding documents a, b and c whose cursor says it is fully synced
// to `collection` (raw documents, a Flat index).
std::unique_ptr<Store> synced_store(const std::string& db, const MilvusCollection& collection) {
  auto store = testing::open_store(db, kDim);
  for (const char* id : {"a", "b", "c"}) {
    std::vector<float> v = {1, float(id[0] - 'a'), 0, 0};
    REQUIRE(store->upsert(id, v.data(), kDim, "").ok());
  }
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  MilvusSyncState state;
  state.complete = true;
  REQUIRE(
      store->put_cursor(sync_cursor_name(collection), {stats.journal_seq, encode_sync_state(state)}).ok());
  return store;
}

Status search_one(const Store& store, const MilvusCollection& collection, int k, std::vector<Hit>* hits) {
  const std::vector<float> query = {1, 0.5f, 0, 0};
  std::vector<std::vector<Hit>> results;
  Status s = milvus_search(store, collection, query.data(), 1, k, false, &results);
  if (s.ok()) *hits = results[0];
  return s;
}

// One query vector of the store's dim, as the CLI reads it.
std::string query_npy(const testing::TempDir& dir) {
  Matrix m;
  m.rows = 1;
  m.cols = kDim;
  m.data = {1, 0.5f, 0, 0};
  std::string path = dir / "q.npy";
  REQUIRE(write_npy(path, m).ok());
  return path;
}

TEST_CASE("Milvus error answers of any shape are errors, not crashes", "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-answers");
  const MilvusCollection collection{milvus.uri(), "docs"};
  auto store = synced_store(dir / "db", collection);
  std::vector<Hit> hits;

  // A "message" that is no string threw nlohmann's type_error in a search
  // worker thread: std::terminate, SIGABRT.
  milvus.answer("search", R"({"code":1100,"message":12345})");
  Status s = search_one(*store, collection, 3, &hits);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("code 1100: 12345"));
  for (const char* body : {R"({"code":null,"message":null})", R"({"code":"200","data":[]})",
                           R"({"code":200,"data":{"id":"a","distance":0.5}})",
                           R"({"code":200,"data":[{"id":7,"distance":0.5}]})",
                           R"({"code":200,"data":[{"id":"a","distance":"0.5"}]})", "[1,2]"}) {
    INFO(body);
    milvus.answer("search", body);
    CHECK(search_one(*store, collection, 3, &hits).code() == Code::kUnavailable);
  }

  // A message nested past any answer's depth overflowed the stack in dump().
  milvus.answer("search",
                R"({"code":1100,"message":)" + std::string(100000, '[') + std::string(100000, ']') + "}");
  CHECK(search_one(*store, collection, 3, &hits).code() == Code::kUnavailable);

  // The sync's first request, answered likewise, ended in "internal error: [json.exception...]".
  milvus.answer("collections/describe", R"({"code":1100,"message":[1]})");
  MilvusSyncReport report;
  s = milvus_sync(*store, collection, MilvusSyncOptions(), &report);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("code 1100: [1]"));

  // The CLI: one error line, exit 1.
  store.reset();
  milvus.answer("search", R"({"code":1100,"message":12345})");
  CliRun run = run_cli("milvus search " + dir / "db" + " --uri " + milvus.uri() +
                       " --collection docs --npy " + query_npy(dir) + " -k 3");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::StartsWith("embedapt: ") && Catch::Contains("code 1100: 12345"));
  CHECK(std::count(run.output.begin(), run.output.end(), '\n') == 1);
}

TEST_CASE("Milvus counts are read strictly, and a URI must name a host", "[milvus]") {
  FakeMilvus milvus;
  MilvusClient client;
  REQUIRE(MilvusClient::make({milvus.uri(), "docs"}, &client).ok());
  uint64_t n = 0;
  for (const char* count : {"\"12abc\"", "-1", "\"\"", "\"-1\"", "1.5", "null"}) {
    INFO(count);
    milvus.answer("query", std::string(R"j({"code":200,"data":[{"count(*)":)j") + count + "}]}");
    CHECK(client.count("version >= 0", &n).code() == Code::kUnavailable);
  }
  milvus.answer("query", R"({"code":200,"data":[]})");
  CHECK(client.count("version >= 0", &n).code() == Code::kUnavailable);
  milvus.answer("query", R"j({"code":200,"data":[{"count(*)":"12"}]})j");
  REQUIRE(client.count("version >= 0", &n).ok());
  CHECK(n == 12);
  milvus.answer("query", R"j({"code":200,"data":[{"count(*)":12}]})j");
  REQUIRE(client.count("version >= 0", &n).ok());
  CHECK(n == 12);

  // A row of a versions query that is not {"id": string, "version": integer}.
  std::vector<std::pair<std::string, uint64_t>> versions;
  milvus.answer("query", R"({"code":200,"data":[{"id":"a","version":"3x"}]})");
  CHECK(client.versions({"a"}, &versions).code() == Code::kUnavailable);
  CHECK(versions.empty());

  // "http://" was taken, and failed after every retry: "Could not resolve host".
  for (const char* uri : {"http://", "https://", "http:///v1", "http://:19530", "http://user:pw@:19530",
                          "http://127.0.0.1:19530?x=1", "http://127.0.0.1:19530/#f"}) {
    INFO(uri);
    Status s = MilvusClient::make({uri, "docs"}, &client);
    CHECK(s.code() == Code::kInvalidArgument);
  }
  CHECK(MilvusClient::make({"http://milvus.internal:19530/", "docs"}, &client).ok());
}

// Every byte of every file under `dir`, for a secret that must not be there.
bool any_file_holds(const std::string& dir, const std::string& secret) {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(secret) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("a password in the Milvus URI reaches no message and no store file", "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-secret");
  const std::string address = milvus.uri().substr(std::string("http://").size());
  const MilvusCollection collection{"http://admin:s3cretpw@" + address, "docs"};

  // A first sync pins its cursor before the push, which fails here.
  auto store = testing::open_store(dir / "db", kDim);
  milvus.answer("collections/describe", R"({"code":100,"message":"can't find collection"})");
  milvus.answer("collections/drop", R"({"code":1,"message":"boom"})");
  MilvusSyncReport report;
  Status s = milvus_sync(*store, collection, MilvusSyncOptions(), &report);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), !Catch::Contains("s3cretpw"));
  JournalCursor cursor;
  REQUIRE(store->get_cursor("milvus http://" + address + " docs", &cursor).ok());

  // A sync that completes (here an incremental one with nothing to send).
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  MilvusSyncState state;
  state.complete = true;
  REQUIRE(
      store->put_cursor("milvus http://" + address + " docs", {stats.journal_seq, encode_sync_state(state)})
          .ok());
  milvus.answer("collections/describe", R"({"code":200,"data":{"load":"LoadStateLoaded"}})");
  s = milvus_sync(*store, collection, MilvusSyncOptions(), &report);
  INFO(s.ToString());
  CHECK(s.ok());
  CHECK_FALSE(report.full);

  std::unique_ptr<SearchView> view;
  s = milvus_view(*store, {collection.uri, "other"}, nullptr, &view);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("[redacted]@") && !Catch::Contains("s3cretpw"));
  s = milvus_view(*store, {"ftp://admin:s3cretpw@" + address, "docs"}, nullptr, &view);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), !Catch::Contains("s3cretpw"));
  store.reset();
  CHECK_FALSE(any_file_holds(dir / "db", "s3cretpw"));
}

TEST_CASE("a store synced under a URI with credentials keeps its cursor", "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-legacy");
  const std::string address = milvus.uri().substr(std::string("http://").size());
  const MilvusCollection collection{"http://admin:pw@" + address, "docs"};
  // The cursor as a store synced before kept it: under the whole URI.
  auto store = testing::open_store(dir / "db", kDim);
  std::vector<float> v = {1, 0, 0, 0};
  REQUIRE(store->upsert("a", v.data(), kDim, "").ok());
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  MilvusSyncState state;
  state.complete = true;
  const std::string legacy = "milvus http://admin:pw@" + address + " docs";
  REQUIRE(store->put_cursor(legacy, {stats.journal_seq, encode_sync_state(state)}).ok());

  std::unique_ptr<SearchView> view;
  CHECK(milvus_view(*store, collection, nullptr, &view).ok());
  MilvusSyncReport report;
  REQUIRE(milvus_sync(*store, collection, MilvusSyncOptions(), &report).ok());
  CHECK_FALSE(report.full);
  JournalCursor cursor;
  CHECK(store->get_cursor(legacy, &cursor).code() == Code::kNotFound);
  // The same collection without credentials (or with others) is the same cursor.
  CHECK(milvus_view(*store, {milvus.uri() + "/", "docs"}, nullptr, &view).ok());
  CHECK(milvus_view(*store, {"http://other:pw2@" + address, "docs"}, nullptr, &view).ok());
}

std::vector<std::string> ids_of(const std::vector<Hit>& hits) {
  std::vector<std::string> ids;
  ids.reserve(hits.size());
  for (const Hit& hit : hits) ids.push_back(hit.id);
  return ids;
}

TEST_CASE("Milvus results are checked: each id once, at most k, stored ids, finite scores", "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-results");
  const MilvusCollection collection{milvus.uri(), "docs"};
  auto store = synced_store(dir / "db", collection);
  milvus.answer("search", R"({"code":200,"data":[{"id":"a","distance":0.9},{"id":"a","distance":0.9},
      {"id":"ghost","distance":0.8},{"id":"b","distance":0.7},{"id":"c","distance":0.6},
      {"id":"b","distance":0.5}]})");

  // The client: duplicates dropped (the first kept), then k at most.
  MilvusClient client;
  REQUIRE(MilvusClient::make(collection, &client).ok());
  std::vector<MilvusHit> raw;
  const std::vector<float> query = {1, 0, 0, 0};
  REQUIRE(client.search(query.data(), kDim, 3, &raw).ok());
  REQUIRE(raw.size() == 3);
  CHECK(raw[0].id == "a");
  CHECK(raw[1].id == "ghost");
  CHECK(raw[2].id == "b");
  CHECK(raw[2].distance == Approx(0.7));

  // The view: and no id the store does not hold (eval scored a repeated hit
  // several times: ndcg@10 4.54, recall@10 10.0).
  std::vector<Hit> hits;
  REQUIRE(search_one(*store, collection, 3, &hits).ok());
  CHECK(ids_of(hits) == std::vector<std::string>{"a", "b"});
  REQUIRE(search_one(*store, collection, 10, &hits).ok());
  CHECK(ids_of(hits) == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(store->remove("c").ok());
  REQUIRE(search_one(*store, collection, 10, &hits).ok());
  CHECK(ids_of(hits) == std::vector<std::string>{"a", "b"});

  // 1e300 fits a double, not a float: it became an inf score.
  for (const char* distance : {"1e300", "-1e300"}) {
    milvus.answer("search", std::string(R"({"code":200,"data":[{"id":"a","distance":)") + distance + "}]}");
    Status s = search_one(*store, collection, 3, &hits);
    CHECK(s.code() == Code::kUnavailable);
    CHECK_THAT(s.message(), Catch::Contains("not a finite float"));
  }
}

TEST_CASE("a Milvus server that never answers fails within 4 x the timeout", "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-timeout");
  MilvusCollection collection{milvus.uri(), "docs"};
  auto store = synced_store(dir / "db", collection);
  HttpReply hang = HttpReply::json(200, R"({"code":200,"data":[]})");
  hang.delay_seconds = 120;
  milvus.answer("search", hang);

  // Each attempt was bounded at 300 s, with no way to shorten it: ~20 minutes.
  collection.timeout_seconds = 0.2;
  std::vector<Hit> hits;
  const auto start = std::chrono::steady_clock::now();
  Status s = search_one(*store, collection, 3, &hits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(s.code() == Code::kUnavailable);
  CHECK(seconds < 20);
  for (double bad : {0.0, -1.0, 1e6, std::nan("")}) {
    collection.timeout_seconds = bad;
    CHECK(search_one(*store, collection, 3, &hits).code() == Code::kInvalidArgument);
  }
  store.reset();

  // The CLI's --timeout, checked before anything is opened or sent.
  const std::string search = "milvus search " + dir / "db" + " --uri " + milvus.uri() +
                             " --collection docs --npy " + query_npy(dir) + " -k 3";
  CliRun run = run_cli(search + " --timeout 0");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("--timeout: a timeout must be 0.001 to 86400 seconds"));
  run = run_cli("milvus sync " + dir / "db" + " --uri " + milvus.uri() + " --collection docs --timeout nan");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("--timeout: "));
  const size_t before = milvus.requests().size();
  run = run_cli(search + " --timeout 0.2");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("gave up after 4 attempts"));
  CHECK(milvus.requests().size() == before + 4);

  // eval --milvus takes the same --timeout (it waited Milvus's 60 s an attempt).
  // The flag also bounds the embedder's answers, and a Python child starting
  // on a loaded machine took more than 0.2 s: 2 s leaves it room.
  const std::string dataset = dir / "dataset.json";
  REQUIRE(write_file_atomic(dataset, R"({"queries": {"q1": "first"}, "corpus": {"a": "alpha", "b": "beta"},
                                          "relevant_docs": {"q1": ["a"]}})")
              .ok());
  const auto eval_start = std::chrono::steady_clock::now();
  run = run_cli("eval " + dir / "db" + " --dataset " + dataset + " --embedder 'command:python3 " +
                EMBEDAPT_SOURCE_DIR + "/tests/data/fake_command_embedder.py' --milvus " + milvus.uri() +
                " --collection docs --timeout 2");
  const double eval_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("gave up after 4 attempts"));
  CHECK(eval_seconds < 60);
}

TEST_CASE(
    "milvus search: --hit is checked before anything is logged, and without --log the store is only read",
    "[milvus]") {
  FakeMilvus milvus;
  testing::TempDir dir("milvus-cli-log");
  const std::string db = dir / "db";
  synced_store(db, {milvus.uri(), "docs"}).reset();
  milvus.answer("search", R"({"code":200,"data":[{"id":"a","distance":0.9},{"id":"b","distance":0.8}]})");
  const std::string search = "milvus search " + db + " --uri " + milvus.uri() + " --collection docs --npy " +
                             query_npy(dir) + " -k 3";
  auto logged = [&](uint64_t queries, uint64_t hits) {
    auto store = testing::open_store(db, kDim);
    StoreStats stats;
    REQUIRE(store->stats(&stats).ok());
    CHECK(stats.logged_queries == queries);
    CHECK(stats.logged_hits == hits);
  };

  // A hit the store refused left its query logged; "" was ignored; a typo
  // (neither a result nor a document) was logged as training data.
  for (const std::string& hit : {std::string(2000, 'x'), std::string("no_such_document_typo")}) {
    std::string command = search + " --log --hit ";
    command += hit;
    CliRun run = run_cli(command);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.output, Catch::Contains("no document with this id"));
  }
  CliRun run = run_cli(search + " --log --hit ''");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("--hit: an empty id"));
  run = run_cli(search + " --hit ''");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.output, Catch::Contains("--hit needs --log"));
  logged(0, 0);
  // A stored document the results missed is what the user chose.
  run = run_cli(search + " --log --hit c");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  logged(1, 1);

  // An app holding the store open for writing: a search without --log only
  // reads it (it opened the store for writing, and failed on the lock).
  auto app = testing::open_store(db, kDim);
  run = run_cli(search);
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.output, Catch::Contains("0.900000"));
  run = run_cli(search + " --log");
  CHECK(run.exit_code == 1);
}

}  // namespace
}  // namespace embedapt
