// The evaluator and ingest on a real store (RocksDB + FAISS on disk) built
// from synthetic vectors whose right answers are known: a table embedder maps
// each text to a chosen vector, and test adapters do nothing or help.
//
// Geometry (16-d, cosine): document i is the basis vector e_i (i < 8). A
// "clear" query for document i is e_i: rank 1. A "confused" query is
// 0.6 e_i + 0.8 e_{i+1} + 0.5 e_{8+i}: document i+1 wins and document i is
// second (MRR 0.5), but the hint in dimension 8+i lets the helpful adapter,
// which adds 2 x dimension 8+i to dimension i, put document i first.
#include <filesystem>
#include <map>

#include "core/eval/evaluator.h"
#include "core/eval/ingest.h"
#include "tests/support/catch.h"
#include "tests/support/store.h"

using namespace embedapt;
using embedapt::testing::open_store;

namespace {

constexpr int kDim = 16;
constexpr int kDocs = 8;
constexpr int kQueriesPerKind = 20;  // clear and confused each

std::vector<float> basis(int i) {
  std::vector<float> v(kDim, 0.0f);
  v[i] = 1.0f;
  return v;
}

class TableEmbedder : public Embedder {
 public:
  TableEmbedder(std::string identity, std::map<std::string, std::vector<float>> table)
      : identity_(std::move(identity)), table_(std::move(table)) {}

  int dim() const override { return kDim; }
  const std::string& identity() const override { return identity_; }
  Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) override {
    for (const std::string& text : texts) {
      auto it = table_.find(text);
      if (it == table_.end()) return Status::NotFound("no vector for \"" + text + "\"");
      out->insert(out->end(), it->second.begin(), it->second.end());
      ++(side == EmbedSide::kQuery ? queries_embedded : documents_embedded);
    }
    return Status::OK();
  }

  size_t queries_embedded = 0;
  size_t documents_embedded = 0;

 private:
  std::string identity_;
  std::map<std::string, std::vector<float>> table_;
};

// Shared base of the test adapters: a 16 -> 16 transform applied row by row.
class TestAdapter : public Adapter {
 public:
  TestAdapter(std::string kind, AdapterSide side) : kind_(std::move(kind)), side_(side) {}
  const std::string& kind() const override { return kind_; }
  int in_dim() const override { return kDim; }
  int out_dim() const override { return kDim; }
  AdapterSide side() const override { return side_; }
  Status apply(const float* in, size_t n, float* out) const override {
    for (size_t r = 0; r < n; ++r) transform(in + r * kDim, out + r * kDim);
    return Status::OK();
  }

 protected:
  virtual void transform(const float* in, float* out) const = 0;

 private:
  std::string kind_;
  AdapterSide side_;
};

class IdentityAdapter : public TestAdapter {
 public:
  IdentityAdapter() : TestAdapter("identity", AdapterSide::kQuery) {}
  void transform(const float* in, float* out) const override { std::copy(in, in + kDim, out); }
};

// Reads the hint dimensions: the fix a trained adapter should learn.
class HelpfulAdapter : public TestAdapter {
 public:
  HelpfulAdapter() : TestAdapter("helpful", AdapterSide::kQuery) {}
  void transform(const float* in, float* out) const override {
    std::copy(in, in + kDim, out);
    for (int i = 0; i < kDocs; ++i) out[i] += 2.0f * in[kDocs + i];
  }
};

// Reverses the coordinates of queries and documents alike: inner products,
// hence rankings, are unchanged, but the store must build a second index.
class MirrorAdapter : public TestAdapter {
 public:
  MirrorAdapter() : TestAdapter("mirror", AdapterSide::kBoth) {}
  void transform(const float* in, float* out) const override { std::reverse_copy(in, in + kDim, out); }
};

struct Fixture {
  QaDataset dataset;
  std::map<std::string, std::vector<float>> table;
};

Fixture make_fixture() {
  Fixture f;
  for (int i = 0; i < kDocs; ++i) {
    const std::string id = "d" + std::to_string(i), text = "document " + std::to_string(i);
    f.dataset.corpus.push_back({id, text});
    f.table[text] = basis(i);
  }
  for (int n = 0; n < 2 * kQueriesPerKind; ++n) {
    const bool confused = n % 2 == 1;
    const int doc = (n / 2) % kDocs;
    const std::string id = "q" + std::to_string(n);
    const std::string text = (confused ? "confused question " : "clear question ") + std::to_string(n);
    std::vector<float> v = basis(doc);
    if (confused) {
      v[doc] = 0.6f;
      v[(doc + 1) % kDocs] = 0.8f;
      v[kDocs + doc] = 0.5f;
    }
    // A distinct length per query: the same direction (cosine ranks alike),
    // but a different vector, so the query log keeps every query apart.
    for (float& x : v) x *= 1.0f + 0.01f * static_cast<float>(n);
    f.dataset.queries.push_back({id, text});
    f.dataset.relevant_docs.push_back({id, {"d" + std::to_string(doc)}});
    f.table[text] = v;
  }
  return f;
}

std::string fresh_dir(const std::string& name) {
  std::string dir = EMBEDAPT_BINARY_DIR "/test_evaluator_tmp/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path());
  return dir;
}

}  // namespace

TEST_CASE("ingest upserts the corpus with its text and logs every pair", "[ingest]") {
  Fixture f = make_fixture();
  TableEmbedder embedder("table-v1", f.table);
  std::unique_ptr<Store> store = open_store(fresh_dir("ingest"), kDim);
  IngestOptions options;
  options.batch_size = 3;  // several batches, one partial
  IngestCounts counts;
  Status s = ingest_dataset(*store, embedder, f.dataset, options, &counts);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(counts.documents == kDocs);
  CHECK(counts.pairs == size_t{2} * kQueriesPerKind);

  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == kDocs);
  CHECK(stats.embedder == "table-v1");
  Record record;
  REQUIRE(store->get("d3", &record).ok());
  CHECK(record.payload == "document 3");
  CHECK(record.vector == basis(3));

  // Logged pairs: (query id, doc id) -> the query's vector size.
  auto read_pairs = [](const Store& s) {
    std::map<std::pair<uint64_t, std::string>, size_t> pairs;
    REQUIRE(s.scan_log([&](const LoggedQuery& q) {
               for (const std::string& id : q.hit_ids) pairs[{q.id, id}] = q.vector.size();
               return true;
             }).ok());
    return pairs;
  };
  auto pairs = read_pairs(*store);
  REQUIRE(pairs.size() == size_t{2} * kQueriesPerKind);
  std::map<std::string, int> per_doc;
  for (const auto& [pair, size] : pairs) {
    ++per_doc[pair.second];
    CHECK(size == static_cast<size_t>(kDim));
  }
  CHECK(per_doc.size() == kDocs);
  CHECK(per_doc["d0"] == 6);  // queries 0-1, 16-17 and 32-33

  // Again: upserts replace and the log collapses repeated pairs.
  REQUIRE(ingest_dataset(*store, embedder, f.dataset, options, &counts).ok());
  CHECK(read_pairs(*store).size() == size_t{2} * kQueriesPerKind);
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == kDocs);

  // Without pairs, no queries are embedded or logged.
  std::unique_ptr<Store> bare = open_store(fresh_dir("ingest_no_pairs"), kDim);
  TableEmbedder counting("table-v1", f.table);
  options.log_pairs = false;
  REQUIRE(ingest_dataset(*bare, counting, f.dataset, options, &counts).ok());
  CHECK(counts.pairs == 0);
  CHECK(counting.queries_embedded == 0);
  CHECK(read_pairs(*bare).empty());

  // A store already holding another embedder's vectors refuses.
  TableEmbedder other("table-v2", f.table);
  CHECK_FALSE(ingest_dataset(*store, other, f.dataset, options, &counts).ok());
}

TEST_CASE("ingest stops at a batch that fails to embed, keeping the batches before it", "[ingest]") {
  // Batches of 3: d0-d2, d3-d5, d6-d7. The third fails to embed while the
  // second is being written (the pipeline overlaps them): the error comes
  // back and the first two batches are in the store, nothing after them.
  Fixture f = make_fixture();
  f.table.erase("document 7");
  TableEmbedder embedder("table-v1", f.table);
  std::unique_ptr<Store> store = open_store(fresh_dir("ingest_failure"), kDim);
  IngestOptions options;
  options.batch_size = 3;
  IngestCounts counts;
  Status s = ingest_dataset(*store, embedder, f.dataset, options, &counts);
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.ToString().find("embedding the corpus") != std::string::npos);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 6);
  Record record;
  CHECK(store->get("d5", &record).ok());
  CHECK_FALSE(store->get("d6", &record).ok());
  CHECK(embedder.queries_embedded == 0);
}

TEST_CASE("the evaluator scores base and adapters through the real index", "[evaluator]") {
  Fixture f = make_fixture();
  std::unique_ptr<Store> store = open_store(fresh_dir("evaluate"), kDim);
  {
    TableEmbedder embedder("table-v1", f.table);
    IngestOptions ingest;
    ingest.log_pairs = false;
    REQUIRE(ingest_dataset(*store, embedder, f.dataset, ingest, nullptr).ok());
  }
  TableEmbedder embedder("table-v1", f.table);
  std::vector<EvalSystem> systems = {{"identity", "test", std::make_shared<IdentityAdapter>()},
                                     {"helpful", "test", std::make_shared<HelpfulAdapter>()},
                                     {"mirror", "test", std::make_shared<MirrorAdapter>()}};
  EvalOptions options;
  options.top_k = 5;
  options.batch_size = 7;
  EvalReport report;
  Status s = evaluate(*store, embedder, f.dataset, systems, options, &report);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(embedder.queries_embedded == f.dataset.queries.size());  // once, for all four systems
  CHECK(report.unanswerable_queries.empty());

  REQUIRE(report.results.size() == 4);
  const SystemResult& base = report.results[0];
  CHECK(base.name == "base");
  CHECK(base.source.empty());
  CHECK(base.queries.size() == size_t{2} * kQueriesPerKind);
  // Clear queries rank their document first, confused ones second.
  CHECK(base.hit_rate == Approx(1.0));
  CHECK(base.mrr == Approx(0.75));
  CHECK(base.recall_at_10 == Approx(1.0));
  CHECK(base.ndcg_at_10 == Approx(0.5 + 0.5 / std::log2(3.0)));
  CHECK(base.mrr_ci95.lo < 0.75);
  CHECK(base.mrr_ci95.hi > 0.75);
  CHECK(base.hit_rate_ci95.lo == Approx(1.0));
  CHECK(base.queries[1].retrieved.size() == kDocs);  // all 8 documents (fewer than 10)
  CHECK(base.queries[1].retrieved[0] == "d1");       // q1 is confused about d0
  CHECK(base.queries[1].retrieved[1] == "d0");

  const SystemResult& identity = report.results[1];
  CHECK(identity.name == "identity");
  CHECK(identity.mrr == Approx(base.mrr));
  const SystemResult& helpful = report.results[2];
  CHECK(helpful.mrr == Approx(1.0));
  CHECK(helpful.queries[1].retrieved[0] == "d0");
  const SystemResult& mirror = report.results[3];
  CHECK(mirror.mrr == Approx(base.mrr));

  // Comparisons: each adapter vs base, hit_rate then mrr.
  REQUIRE(report.comparisons.size() == 6);
  const Comparison& identity_mrr = report.comparisons[1];
  CHECK(identity_mrr.a == "identity");
  CHECK(identity_mrr.b == "base");
  CHECK(identity_mrr.metric == "mrr");
  CHECK(identity_mrr.delta == Approx(0.0).margin(1e-12));
  CHECK(identity_mrr.p_value == 1.0);
  const Comparison& helpful_hit = report.comparisons[2];
  CHECK(helpful_hit.metric == "hit_rate");
  CHECK(helpful_hit.delta == Approx(0.0).margin(1e-12));  // already 1 at k = 5
  const Comparison& helpful_mrr = report.comparisons[3];
  CHECK(helpful_mrr.a == "helpful");
  CHECK(helpful_mrr.delta == Approx(0.25));
  CHECK(helpful_mrr.p_value < 0.001);  // 20 queries all better by 0.5

  // At k = 1 the confused queries become misses for the base, not for the helpful adapter.
  options.top_k = 1;
  REQUIRE(evaluate(*store, embedder, f.dataset, {systems[1]}, options, &report).ok());
  CHECK(report.results[0].hit_rate == Approx(0.5));
  CHECK(report.results[0].mrr == Approx(0.5));
  CHECK(report.results[1].hit_rate == Approx(1.0));
  CHECK(report.comparisons[0].delta == Approx(0.5));
  CHECK(report.comparisons[0].p_value < 0.001);
}

TEST_CASE("queries whose documents are not stored count as misses and are reported", "[evaluator]") {
  Fixture f = make_fixture();
  std::unique_ptr<Store> store = open_store(fresh_dir("missing"), kDim);
  TableEmbedder embedder("table-v1", f.table);
  IngestOptions ingest;
  ingest.log_pairs = false;
  REQUIRE(ingest_dataset(*store, embedder, f.dataset, ingest, nullptr).ok());

  // A dataset with one more document, never ingested, and a query about it.
  QaDataset wider = f.dataset;
  wider.corpus.push_back({"d_new", "a new document"});
  wider.queries.push_back({"q_new", "clear question 0"});  // a known vector, pointing at d0
  wider.relevant_docs.push_back({"q_new", {"d_new"}});
  EvalReport report;
  REQUIRE(evaluate(*store, embedder, wider, {}, EvalOptions{}, &report).ok());
  CHECK(report.unanswerable_queries == std::vector<std::string>{"q_new"});
  CHECK(report.results[0].queries.size() == wider.queries.size());  // kept, not skipped
  CHECK(report.results[0].queries.back().metrics.hit == 0);
  CHECK(report.results[0].hit_rate == Approx(40.0 / 41.0));
}

TEST_CASE("the evaluator refuses another embedder, a null adapter and a bad k", "[evaluator]") {
  Fixture f = make_fixture();
  std::unique_ptr<Store> store = open_store(fresh_dir("refusals"), kDim);
  TableEmbedder embedder("table-v1", f.table);
  IngestOptions ingest;
  ingest.log_pairs = false;
  REQUIRE(ingest_dataset(*store, embedder, f.dataset, ingest, nullptr).ok());

  EvalReport report;
  TableEmbedder other("table-v2", f.table);
  Status s = evaluate(*store, other, f.dataset, {}, EvalOptions{}, &report);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("table-v1") && Catch::Contains("table-v2"));

  CHECK(evaluate(*store, embedder, f.dataset, {{"none", "", nullptr}}, EvalOptions{}, &report).code() ==
        Code::kInvalidArgument);
  EvalOptions zero;
  zero.top_k = 0;
  CHECK(evaluate(*store, embedder, f.dataset, {}, zero, &report).code() == Code::kInvalidArgument);
}
