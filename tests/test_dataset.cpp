// Dataset readers, the LlamaIndex writer, validation and splitting, on small
// hand-made fixtures (tests/data/datasets) and on the shared 10-K files.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "core/common/files.h"
#include "core/common/json.h"
#include "core/eval/dataset.h"
#include "core/eval/random.h"
#include "core/eval/split.h"

using embedapt::Code;
using embedapt::QaDataset;
using embedapt::Status;

namespace {

const std::string kFixtures = EMBEDAPT_SOURCE_DIR "/tests/data/datasets/";
const std::string kShared = EMBEDAPT_SOURCE_DIR "/../shared/data/10k/";

std::string slurp(const std::string& path) {
  std::string text;
  REQUIRE(embedapt::read_file(path, &text).ok());
  return text;
}

std::set<std::string> query_ids(const QaDataset& d) {
  std::set<std::string> ids;
  for (const auto& q : d.queries) ids.insert(q.id);
  return ids;
}

const std::vector<std::string>& relevant_of(const QaDataset& d, const std::string& query_id) {
  for (const auto& r : d.relevant_docs) {
    if (r.query_id == query_id) return r.doc_ids;
  }
  FAIL("no relevant_docs entry for " << query_id);
  static const std::vector<std::string> none;
  return none;
}

// n queries over n / 2 documents, two queries per document (as in the 10-K sets).
QaDataset synthetic(size_t n) {
  QaDataset d;
  for (size_t j = 0; j < n / 2; ++j)
    d.corpus.push_back({"d" + std::to_string(j), "document " + std::to_string(j)});
  for (size_t i = 0; i < n; ++i) {
    d.queries.push_back({"q" + std::to_string(i), "question " + std::to_string(i)});
    d.relevant_docs.push_back({"q" + std::to_string(i), {"d" + std::to_string(i / 2)}});
  }
  return d;
}

}  // namespace

TEST_CASE("LlamaIndex JSON reads in file order with unicode decoded", "[dataset]") {
  QaDataset d;
  Status s = embedapt::read_llamaindex_json(kFixtures + "tiny.json", &d);
  REQUIRE(s.ok());
  REQUIRE(d.queries.size() == 3);
  REQUIRE(d.corpus.size() == 5);
  CHECK(d.queries[0].id == "q1");
  CHECK(d.queries[0].text == "Where is the caf\u00e9?");
  CHECK(d.queries[1].text == "Which fruit is yellow? \U0001F34C");
  CHECK(d.queries[2].text == "What do \"cats\" and dogs share?\nBoth are pets.");
  CHECK(d.corpus[4].id == "d5");
  CHECK(d.corpus[4].text == "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8, unrelated.");
  CHECK(relevant_of(d, "q3") == std::vector<std::string>{"d3", "d4"});
  CHECK(d.mode == "text");
}

TEST_CASE("LlamaIndex JSON writes back byte for byte as Python's json.dump(indent=4)", "[dataset]") {
  QaDataset d;
  REQUIRE(embedapt::read_llamaindex_json(kFixtures + "tiny.json", &d).ok());
  CHECK(embedapt::to_llamaindex_json(d) == slurp(kFixtures + "tiny.json"));

  // The same data with raw UTF-8 instead of \u escapes reads the same and is written escaped.
  QaDataset unescaped;
  REQUIRE(embedapt::read_llamaindex_json(kFixtures + "tiny_unescaped.json", &unescaped).ok());
  CHECK(embedapt::to_llamaindex_json(unescaped) == slurp(kFixtures + "tiny.json"));

  const std::string out = EMBEDAPT_BINARY_DIR "/test_dataset_roundtrip.json";
  REQUIRE(embedapt::write_llamaindex_json(out, d).ok());
  CHECK(slurp(out) == slurp(kFixtures + "tiny.json"));
  std::filesystem::remove(out);
}

TEST_CASE("the shared 10-K datasets round-trip byte for byte", "[dataset][shared]") {
  for (const char* name : {"train_dataset.json", "val_dataset.json"}) {
    const std::string path = kShared + name;
    if (!std::filesystem::exists(path)) {
      WARN("skipped: " << path << " is absent (the shared 10-K data is not on this machine)");
      continue;
    }
    QaDataset d;
    Status s = embedapt::read_llamaindex_json(path, &d);
    INFO(s.ToString());
    REQUIRE(s.ok());
    CHECK(d.queries.size() == (std::string(name) == "train_dataset.json" ? 731u : 881u));
    CHECK(d.corpus.size() == (std::string(name) == "train_dataset.json" ? 344u : 410u));
    CHECK(embedapt::to_llamaindex_json(d) == slurp(path));
  }
}

TEST_CASE("every validation error names the file and the problem", "[dataset][validation]") {
  struct Case {
    const char* file;
    const char* problem;
  };
  const Case cases[] = {
      {"not_json.json", "not JSON"},
      {"not_object.json", "expected a JSON object"},
      {"missing_queries.json", "missing key \"queries\""},
      {"missing_corpus.json", "missing key \"corpus\""},
      {"missing_relevant_docs.json", "missing key \"relevant_docs\""},
      {"queries_not_object.json", "\"queries\" must be an object"},
      {"text_not_string.json", "corpus \"d5\": text must be a string"},
      {"dangling_query.json", "relevant_docs \"q9\": no such query"},
      {"dangling_doc.json", "relevant_docs \"q2\": no such document \"d9\""},
      {"unjudged_query.json", "query \"q2\" has no relevant_docs entry"},
      {"empty_relevant_list.json", "relevant_docs \"q2\": no relevant documents"},
      {"repeated_relevant_doc.json", "document \"d3\" listed twice"},
      {"empty_query_text.json", "query \"q2\": empty text"},
      {"duplicate_query.json", "duplicate key \"q1\" in \"queries\""},
      {"duplicate_doc.json", "duplicate key \"d2\" in \"corpus\""},
      {"bad_utf8.json", "invalid UTF-8 at byte"},
  };
  for (const Case& c : cases) {
    INFO(c.file);
    QaDataset d;
    Status s = embedapt::read_llamaindex_json(kFixtures + c.file, &d);
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains(c.file) && Catch::Contains(c.problem));
    CHECK(d.queries.empty());  // nothing half-read
  }
  QaDataset d;
  CHECK(embedapt::read_llamaindex_json(kFixtures + "no_such_file.json", &d).code() == Code::kIOError);
}

TEST_CASE("a blank document is kept with a warning, as real data has them", "[dataset][validation]") {
  QaDataset d;
  REQUIRE(embedapt::read_llamaindex_json(kFixtures + "empty_doc_text.json", &d).ok());
  CHECK(d.corpus[4].text.empty());
  CHECK(embedapt::dataset_warnings(d) == std::vector<std::string>{"document \"d5\" has an empty text"});
  QaDataset tiny;
  REQUIRE(embedapt::read_llamaindex_json(kFixtures + "tiny.json", &tiny).ok());
  CHECK(embedapt::dataset_warnings(tiny).empty());
}

TEST_CASE("the bad UTF-8 message gives the line", "[dataset][validation]") {
  QaDataset d;
  Status s = embedapt::read_llamaindex_json(kFixtures + "bad_utf8.json", &d);
  CHECK_THAT(s.message(), Catch::Contains("(line 9)"));
}

TEST_CASE("validation of a dataset built in code, and the writer refuses invalid ones",
          "[dataset][validation]") {
  QaDataset d = synthetic(4);
  CHECK(embedapt::validate_dataset(d, "mine").ok());
  d.corpus[1].text = "bad \xC0\xAF overlong slash";
  Status s = embedapt::validate_dataset(d, "mine");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("mine: document \"d1\": text is not valid UTF-8 (byte 4)"));

  const std::string out = EMBEDAPT_BINARY_DIR "/test_dataset_refused.json";
  CHECK(embedapt::write_llamaindex_json(out, d).code() == Code::kInvalidArgument);
  CHECK_FALSE(std::filesystem::exists(out));

  QaDataset dup = synthetic(4);
  dup.queries.push_back(dup.queries[0]);
  CHECK_THAT(embedapt::validate_dataset(dup, "mine").message(), Catch::Contains("duplicate query id \"q0\""));
  QaDataset empty;
  CHECK_THAT(embedapt::validate_dataset(empty, "mine").message(), Catch::Contains("no queries"));
}

TEST_CASE("a BEIR folder reads corpus, queries and positive qrels", "[dataset][beir]") {
  QaDataset d;
  Status s = embedapt::read_dataset(kFixtures + "beir", &d);
  REQUIRE(s.ok());
  REQUIRE(d.queries.size() == 3);  // query 4 has no qrels
  CHECK(d.queries[0].id == "1");
  CHECK(d.queries[2].text == "which animals are pets");
  REQUIRE(d.corpus.size() == 4);
  CHECK(d.corpus[0].text == "Paris The capital of France.");               // title + text
  CHECK(d.corpus[1].text == "Bananas are yellow.");                        // empty title
  CHECK(relevant_of(d, "3") == std::vector<std::string>{"doc2", "doc3"});  // the score-0 row is not relevant

  QaDataset dangling;
  s = embedapt::read_beir(kFixtures + "beir_dangling", "test", &dangling);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("beir_dangling") && Catch::Contains("no such document \"doc7\""));

  s = embedapt::read_beir(kFixtures + "beir", "dev", &dangling);
  CHECK(s.code() == Code::kIOError);
  CHECK_THAT(s.message(), Catch::Contains("qrels/dev.tsv"));
}

TEST_CASE("JSON nested past kMaxJsonDepth is refused while it is parsed", "[dataset][json]") {
  auto nested = [](size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); };
  nlohmann::json parsed;
  CHECK(embedapt::parse_json(nested(embedapt::kMaxJsonDepth), "x", &parsed).ok());
  CHECK(embedapt::parse_json(nested(embedapt::kMaxJsonDepth + 1), "x", &parsed).code() ==
        Code::kInvalidArgument);
  const Status s = embedapt::parse_json("{\"a\": " + nested(100000) + "}", "deep.json:3", &parsed);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "deep.json:3: JSON nested deeper than 64 levels");
  CHECK(embedapt::parse_json("{\"a\": ", "x", &parsed).code() == Code::kInvalidArgument);

  // A BEIR document's metadata that deep overflowed the stack when it was
  // written back out for the store (a segfault).
  const std::string dir = (std::filesystem::temp_directory_path() / "embedapt-beir-deep").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/qrels");
  REQUIRE(embedapt::write_file_atomic(
              dir + "/corpus.jsonl",
              "{\"_id\": \"d0\", \"text\": \"x\", \"metadata\": {\"x\": " + nested(100000) + "}}\n")
              .ok());
  REQUIRE(embedapt::write_file_atomic(dir + "/queries.jsonl", "{\"_id\": \"1\", \"text\": \"q\"}\n").ok());
  REQUIRE(
      embedapt::write_file_atomic(dir + "/qrels/test.tsv", "query-id\tcorpus-id\tscore\n1\td0\t1\n").ok());
  QaDataset d;
  const Status beir = embedapt::read_dataset(dir, &d);
  CHECK(beir.code() == Code::kInvalidArgument);
  CHECK_THAT(beir.message(), Catch::Contains("corpus.jsonl:1: JSON nested deeper than 64 levels"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("JSONL pairs derive stable ids from the texts and collapse repeats", "[dataset][jsonl]") {
  QaDataset d;
  Status s = embedapt::read_dataset(kFixtures + "pairs.jsonl", &d);
  REQUIRE(s.ok());
  REQUIRE(d.queries.size() == 2);
  REQUIRE(d.corpus.size() == 3);
  // sha256("capital of France") starts with eebe2433a9f27e9f.
  CHECK(d.queries[0].id == "qeebe2433a9f27e9f");
  CHECK(d.queries[1].text == "yellow fruit");
  CHECK(relevant_of(d, d.queries[0].id).size() == 2);  // two documents; the repeated line collapsed
  CHECK(d.corpus[2].text == "France's capital city is Paris.");

  QaDataset bad;
  s = embedapt::read_jsonl_pairs(kFixtures + "pairs_missing_doc.jsonl", &bad);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("pairs_missing_doc.jsonl:2: missing key \"positive\""));
}

TEST_CASE("SplitMix64 matches the reference sequence", "[split]") {
  // The first outputs of Vigna's splitmix64.c seeded with 1234567.
  embedapt::SplitMix64 rng(1234567);
  CHECK(rng.next() == 6457827717110365317ULL);
  CHECK(rng.next() == 3203168211198807973ULL);
  CHECK(rng.next() == 9817491932198370423ULL);
}

TEST_CASE("a split by query is seeded, disjoint, complete and keeps the corpus", "[split]") {
  const QaDataset d = synthetic(100);
  embedapt::SplitOptions options;
  options.fraction = 0.3;
  options.seed = 17;
  QaDataset a, b, a2, b2, other_a, other_b;
  REQUIRE(embedapt::split_dataset(d, options, &a, &b).ok());
  REQUIRE(embedapt::split_dataset(d, options, &a2, &b2).ok());
  CHECK(a.queries.size() == 30);
  CHECK(b.queries.size() == 70);
  CHECK(embedapt::to_llamaindex_json(a) == embedapt::to_llamaindex_json(a2));
  CHECK(embedapt::to_llamaindex_json(b) == embedapt::to_llamaindex_json(b2));
  CHECK(a.corpus.size() == 50);
  CHECK(b.corpus.size() == 50);
  CHECK(embedapt::validate_dataset(a, "a").ok());
  CHECK(embedapt::validate_dataset(b, "b").ok());

  std::set<std::string> ia = query_ids(a), ib = query_ids(b), all = ia;
  all.insert(ib.begin(), ib.end());
  CHECK(all.size() == 100);  // disjoint and complete

  options.seed = 18;
  REQUIRE(embedapt::split_dataset(d, options, &other_a, &other_b).ok());
  CHECK(query_ids(other_a) != ia);

  // Pinned (and computed independently in Python): the same halves on every platform.
  QaDataset small_a, small_b;
  options.fraction = 0.5;
  options.seed = 1;
  REQUIRE(embedapt::split_dataset(synthetic(10), options, &small_a, &small_b).ok());
  CHECK(query_ids(small_a) == std::set<std::string>{"q0", "q1", "q4", "q8", "q9"});
}

TEST_CASE("a split by document keeps each document's queries together", "[split]") {
  const QaDataset d = synthetic(100);
  embedapt::SplitOptions options;
  options.by = embedapt::SplitBy::kDocument;
  options.fraction = 0.25;
  options.seed = 5;
  QaDataset a, b;
  REQUIRE(embedapt::split_dataset(d, options, &a, &b).ok());
  CHECK(a.queries.size() == 26);  // whole documents of two queries each: 13 of them pass 25
  CHECK(a.queries.size() + b.queries.size() == 100);
  std::set<std::string> docs_a, docs_b;
  for (const auto& r : a.relevant_docs) docs_a.insert(r.doc_ids.begin(), r.doc_ids.end());
  for (const auto& r : b.relevant_docs) docs_b.insert(r.doc_ids.begin(), r.doc_ids.end());
  for (const std::string& doc : docs_a) CHECK(docs_b.count(doc) == 0);
}

TEST_CASE("a split refuses a fraction that leaves a half empty", "[split]") {
  QaDataset a, b;
  embedapt::SplitOptions options;
  options.fraction = 1.0;
  CHECK(embedapt::split_dataset(synthetic(10), options, &a, &b).code() == Code::kInvalidArgument);
  options.fraction = 0.01;  // rounds to 0 of 10 queries
  CHECK(embedapt::split_dataset(synthetic(10), options, &a, &b).code() == Code::kInvalidArgument);
  options.fraction = 0.5;
  options.by = embedapt::SplitBy::kDocument;
  CHECK(embedapt::split_dataset(synthetic(2), options, &a, &b).code() ==
        Code::kInvalidArgument);  // one document
}
