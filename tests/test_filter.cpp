// Filtered search on real RocksDB + FAISS: metadata stored, returned, replaced
// and removed with its record; the filter language and its errors; filtered
// top-k against brute force over the matching subset, for Flat at 0.1% to 50%
// selectivity over 100k records, and min(k, matches) hits from HNSW and IVF.
#include <rocksdb/db.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "tests/support/catch.h"
#include "tests/support/store.h"
#include "tests/support/temp_dir.h"

using namespace embedapt;
using embedapt::testing::open_store;
using embedapt::testing::TempDir;

namespace {

Filter parse(const std::string& json) {
  Filter filter;
  Status s = Filter::parse(json, &filter);
  INFO(json << ": " << s.ToString());
  REQUIRE(s.ok());
  return filter;
}

SearchOptions filtered(int k, const std::string& json) {
  SearchOptions options;
  options.k = k;
  options.filter = parse(json);
  return options;
}

std::vector<std::string> ids_of(const std::vector<Hit>& hits) {
  std::vector<std::string> ids;
  ids.reserve(hits.size());
  for (const Hit& hit : hits) ids.push_back(hit.id);
  return ids;
}

// Seeded random records: unit vectors and metadata whose fields give known
// selectivities. bucket is uniform in [0, 1000): bucket == b selects 0.1%,
// a range of ten buckets 1%; group "g<bucket % 10>" selects 10%; even is
// true for half of them; tags lists two of eight tags.
struct Corpus {
  int dim = 0;
  std::vector<float> vectors;  // normalised
  std::vector<int> bucket;
  std::vector<std::vector<std::string>> tags;

  Corpus(size_t n, int dim_, uint32_t seed) : dim(dim_) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> buckets(0, 999), tag(0, 7);
    vectors.resize(n * dim);
    for (size_t i = 0; i < n; ++i) {
      double norm = 0;
      for (int j = 0; j < dim; ++j) {
        vectors[i * dim + j] = normal(rng);
        norm += double(vectors[i * dim + j]) * vectors[i * dim + j];
      }
      for (int j = 0; j < dim; ++j)
        vectors[i * dim + j] = static_cast<float>(vectors[i * dim + j] / std::sqrt(norm));
      bucket.push_back(buckets(rng));
      tags.push_back({"t" + std::to_string(tag(rng)), "t" + std::to_string(tag(rng))});
    }
  }
  size_t size() const { return bucket.size(); }
  std::string id(size_t i) const { return "doc" + std::to_string(i); }
  std::string metadata(size_t i) const {
    nlohmann::json m = {{"bucket", bucket[i]},
                        {"group", "g" + std::to_string(bucket[i] % 10)},
                        {"even", bucket[i] % 2 == 0},
                        {"tags", tags[i]}};
    return m.dump();
  }
  void fill(Store* store) const {
    std::vector<Record> batch;
    for (size_t i = 0; i < size(); ++i) {
      batch.push_back({id(i), {vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim}, "", metadata(i)});
      if (batch.size() == 10000 || i + 1 == size()) {
        REQUIRE(store->upsert_batch(batch).ok());
        batch.clear();
      }
    }
  }
  // The exact top-k (inner product of unit vectors) among the records `keep` accepts.
  std::vector<std::pair<float, std::string>> brute_force(const float* query, int k,
                                                         const std::function<bool(size_t)>& keep) const {
    std::vector<std::pair<float, std::string>> scored;
    for (size_t i = 0; i < size(); ++i) {
      if (!keep(i)) continue;
      double dot = 0;
      for (int j = 0; j < dim; ++j) dot += double(query[j]) * vectors[i * dim + j];
      scored.push_back({static_cast<float>(dot), id(i)});
    }
    const size_t top = std::min<size_t>(k, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + top, scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    scored.resize(top);
    return scored;
  }
};

struct Case {
  const char* name;
  std::string filter;
  std::function<bool(const Corpus&, size_t)> keep;
};

std::vector<Case> selectivity_cases() {
  return {
      {"0.1% (number equality)", R"({"bucket": 417})",
       [](const Corpus& c, size_t i) { return c.bucket[i] == 417; }},
      {"1% (range)", R"({"bucket": {"$gte": 200, "$lt": 210}})",
       [](const Corpus& c, size_t i) { return c.bucket[i] >= 200 && c.bucket[i] < 210; }},
      {"10% (string equality under $or)", R"({"$or": [{"group": "g3"}]})",
       [](const Corpus& c, size_t i) { return c.bucket[i] % 10 == 3; }},
      {"50% (negated bool)", R"({"$not": {"even": true}})",
       [](const Corpus& c, size_t i) { return c.bucket[i] % 2 != 0; }},
      {"~23% ($contains and $nin)", R"({"tags": {"$contains": "t5"}, "group": {"$nin": ["g1", "g2"]}})",
       [](const Corpus& c, size_t i) {
         const auto& t = c.tags[i];
         return std::count(t.begin(), t.end(), "t5") > 0 && c.bucket[i] % 10 != 1 && c.bucket[i] % 10 != 2;
       }},
  };
}

}  // namespace

TEST_CASE("Flat: filtered top-10 equals brute force over the matching subset, 100k records") {
  TempDir dir("filter-flat");
  const Corpus corpus(100000, 32, 7);
  auto store = open_store(dir / "store", corpus.dim);
  corpus.fill(store.get());
  const Corpus queries(20, 32, 8);
  for (const Case& c : selectivity_cases()) {
    INFO(c.name);
    {
      const size_t matches = std::count_if(corpus.bucket.begin(), corpus.bucket.end(),
                                           [&, i = size_t{0}](int) mutable { return c.keep(corpus, i++); });
      REQUIRE(matches > 0);
      std::vector<std::vector<Hit>> results;
      REQUIRE(
          store->search_batch(queries.vectors.data(), queries.size(), filtered(10, c.filter), &results).ok());
      for (size_t q = 0; q < queries.size(); ++q) {
        auto expected = corpus.brute_force(&queries.vectors[q * corpus.dim], 10,
                                           [&](size_t i) { return c.keep(corpus, i); });
        REQUIRE(results[q].size() == std::min<size_t>(10, matches));
        for (size_t r = 0; r < expected.size(); ++r) {
          INFO("query " << q << " rank " << r);
          CHECK(results[q][r].id == expected[r].second);
          CHECK(results[q][r].score == Approx(expected[r].first).margin(1e-5));
        }
      }
    }
  }
}

TEST_CASE("Filtered search returns min(k, matches) hits on HNSW and IVF, at every selectivity") {
  for (const std::string spec : {"HNSW32", "IVF64,Flat"}) {
    INFO(spec);
    {
      TempDir dir("filter-ann");
      const Corpus corpus(20000, 16, 11);
      auto store = open_store(dir / "store", corpus.dim, spec);
      corpus.fill(store.get());
      const Corpus queries(10, 16, 12);
      for (const Case& c : selectivity_cases()) {
        size_t matches = 0;
        for (size_t i = 0; i < corpus.size(); ++i) matches += c.keep(corpus, i);
        for (int k : {1, 10, 100}) {
          std::vector<std::vector<Hit>> results;
          REQUIRE(store->search_batch(queries.vectors.data(), queries.size(), filtered(k, c.filter), &results)
                      .ok());
          for (const auto& hits : results) {
            INFO(c.name << " k=" << k);
            REQUIRE(hits.size() == std::min<size_t>(k, matches));
            for (const Hit& hit : hits) {
              size_t i = std::stoul(hit.id.substr(3));
              REQUIRE(c.keep(corpus, i));
            }
          }
        }
      }
    }
  }
}

// The store's HNSW walk passes through rejected vectors and keeps ef_search
// matching ones in its list, so that a filter does not cost recall.
TEST_CASE("HNSW: filtered recall@10 against the exact filtered answer is at least the unfiltered recall") {
  TempDir dir("filter-hnsw-recall");
  const Corpus corpus(20000, 32, 13);
  auto store = open_store(dir / "store", corpus.dim, "HNSW32");
  corpus.fill(store.get());
  const Corpus queries(50, 32, 14);
  auto recall = [&](const SearchOptions& options, const std::function<bool(size_t)>& keep) {
    std::vector<std::vector<Hit>> results;
    REQUIRE(store->search_batch(queries.vectors.data(), queries.size(), options, &results).ok());
    double sum = 0;
    for (size_t q = 0; q < queries.size(); ++q) {
      const auto expected = corpus.brute_force(&queries.vectors[q * corpus.dim], 10, keep);
      size_t found = 0;
      for (const auto& e : expected) {
        found += std::count_if(results[q].begin(), results[q].end(),
                               [&](const Hit& h) { return h.id == e.second; });
      }
      sum += double(found) / expected.size();
    }
    return sum / queries.size();
  };
  const double unfiltered = recall(SearchOptions(10), [](size_t) { return true; });
  INFO("unfiltered recall@10 " << unfiltered);
  for (const Case& c : selectivity_cases()) {
    const double with_filter = recall(filtered(10, c.filter), [&](size_t i) { return c.keep(corpus, i); });
    INFO(c.name << ": filtered recall@10 " << with_filter);
    CHECK(with_filter >= unfiltered - 0.02);
  }
}

namespace {

// Applies `change` to the store's RocksDB column family `family`, the store closed.
void change_column_family(const std::string& store_path, const std::string& family,
                          const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& change) {
  const std::string path = store_path + "/db";
  std::vector<std::string> names;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  families.reserve(names.size());
  for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &db).ok());
  const auto at = std::find(names.begin(), names.end(), family);
  REQUIRE(at != names.end());
  change(db, handles[at - names.begin()]);
  for (auto* handle : handles) REQUIRE(db->DestroyColumnFamilyHandle(handle).ok());
  delete db;
}

}  // namespace

TEST_CASE("verify finds a metadata index that disagrees with the records' metadata") {
  TempDir dir("filter-verify");
  const std::string path = dir / "store";
  {
    auto store = open_store(path, 3);
    REQUIRE(store
                ->upsert_batch({{"a", {1, 0, 0}, "", R"({"lang": "da", "year": 2021})"},
                                {"b", {0, 1, 0}, "", R"({"lang": "de"})"}})
                .ok());
    REQUIRE(store->verify().ok());
  }
  std::string removed;
  change_column_family(path, "metadata_index", [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), family));
    it->SeekToFirst();
    REQUIRE(it->Valid());
    removed = it->key().ToString();
    REQUIRE(db->Delete(rocksdb::WriteOptions(), family, removed).ok());
  });
  {
    auto store = open_store(path, 3);
    const Status s = store->verify();
    INFO(s.ToString());
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message().find("missing from the metadata index") != std::string::npos);
  }
  // The key back, and one no record's metadata accounts for.
  change_column_family(path, "metadata_index", [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family) {
    REQUIRE(db->Put(rocksdb::WriteOptions(), family, removed, "").ok());
    REQUIRE(db->Put(rocksdb::WriteOptions(), family, removed + "x", "").ok());
  });
  auto store = open_store(path, 3);
  const Status s = store->verify();
  INFO(s.ToString());
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("the metadata index holds") != std::string::npos);
}

TEST_CASE("Metadata is stored with the record, returned with hits, replaced by upsert, gone with remove") {
  TempDir dir("filter-metadata");
  const std::string path = dir / "store";
  const std::vector<float> a = {1, 0, 0}, b = {0, 1, 0}, c = {0, 0, 1};
  {
    auto store = open_store(path, 3);
    REQUIRE(store
                ->upsert_batch({{"a", a, "pa", R"({"lang": "da", "year": 2021, "tags": ["x", "y"]})"},
                                {"b", b, "pb", R"({"lang": "de", "year": 2019.5})"},
                                {"c", c, "pc", ""}})
                .ok());
    Record record;
    REQUIRE(store->get("a", &record).ok());
    CHECK(record.metadata == R"({"lang":"da","tags":["x","y"],"year":2021})");
    REQUIRE(store->get("c", &record).ok());
    CHECK(record.metadata.empty());

    std::vector<Hit> hits;
    REQUIRE(store->search(a.data(), 3, filtered(3, R"({"year": {"$gt": 2020}})"), &hits).ok());
    REQUIRE(ids_of(hits) == std::vector<std::string>{"a"});
    CHECK(hits[0].payload == "pa");
    CHECK(hits[0].metadata == R"({"lang":"da","tags":["x","y"],"year":2021})");
    // Records without the field pass the negative conditions.
    REQUIRE(store->search(a.data(), 3, filtered(3, R"({"lang": {"$ne": "da"}})"), &hits).ok());
    std::vector<std::string> ids = ids_of(hits);
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"b", "c"});

    // Upsert replaces the metadata: the old values no longer match.
    REQUIRE(store->upsert_batch({{"a", a, "pa2", R"({"lang": "sv"})"}}).ok());
    REQUIRE(store->search(a.data(), 3, filtered(3, R"({"lang": "da"})"), &hits).ok());
    CHECK(hits.empty());
    REQUIRE(store->search(a.data(), 3, filtered(3, R"({"lang": "sv"})"), &hits).ok());
    CHECK(ids_of(hits) == std::vector<std::string>{"a"});
    // A plain upsert leaves the record without metadata.
    REQUIRE(store->upsert("b", b.data(), 3, "pb2").ok());
    REQUIRE(store->search(b.data(), 3, filtered(3, R"({"lang": "de"})"), &hits).ok());
    CHECK(hits.empty());
    REQUIRE(store->remove("a").ok());
    REQUIRE(store->search(a.data(), 3, filtered(3, R"({"lang": "sv"})"), &hits).ok());
    CHECK(hits.empty());
    REQUIRE(store->verify().ok());
  }
  auto store = open_store(path, 3);
  REQUIRE(store->verify().ok());
  REQUIRE(store->upsert_batch({{"d", a, "", R"({"lang": "da"})"}}).ok());
  std::vector<Hit> hits;
  REQUIRE(store->search(a.data(), 3, filtered(3, R"({"lang": "da"})"), &hits).ok());
  CHECK(ids_of(hits) == std::vector<std::string>{"d"});
}

TEST_CASE("An upsert batch naming a record twice keeps the last metadata only") {
  TempDir dir("filter-twice");
  auto store = open_store(dir / "store", 2);
  const std::vector<float> v = {1, 0};
  REQUIRE(store->upsert_batch({{"x", v, "", R"({"tags": ["a", "b"]})"}, {"x", v, "", R"({"tags": ["c"]})"}})
              .ok());
  std::vector<Hit> hits;
  REQUIRE(store->search(v.data(), 2, filtered(5, R"({"tags": {"$contains": "a"}})"), &hits).ok());
  CHECK(hits.empty());
  REQUIRE(store->search(v.data(), 2, filtered(5, R"({"tags": {"$contains": "c"}})"), &hits).ok());
  CHECK(hits.size() == 1);
  REQUIRE(store->verify().ok());
}

TEST_CASE("remove_matching removes exactly the matching records, atomically") {
  TempDir dir("filter-remove");
  const Corpus corpus(3000, 8, 21);
  auto store = open_store(dir / "store", corpus.dim);
  corpus.fill(store.get());
  uint64_t removed = 0;
  REQUIRE(store->remove_matching(parse(R"({"group": {"$in": ["g1", "g2"]}})"), &removed).ok());
  size_t expected = 0;
  for (size_t i = 0; i < corpus.size(); ++i)
    expected += corpus.bucket[i] % 10 == 1 || corpus.bucket[i] % 10 == 2;
  CHECK(removed == expected);
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == corpus.size() - expected);
  for (size_t i = 0; i < corpus.size(); ++i) {
    Record record;
    const bool gone = corpus.bucket[i] % 10 == 1 || corpus.bucket[i] % 10 == 2;
    CHECK(store->get(corpus.id(i), &record).code() == (gone ? Code::kNotFound : Code::kOk));
  }
  // A negated filter removes everything else.
  REQUIRE(store->remove_matching(parse(R"({"$not": {"even": true}})"), &removed).ok());
  REQUIRE(store->stats(&stats).ok());
  for (size_t i = 0; i < corpus.size(); ++i) {
    Record record;
    if (store->get(corpus.id(i), &record).ok()) CHECK(corpus.bucket[i] % 2 == 0);
  }
  REQUIRE(store->verify().ok());
}

TEST_CASE("Bad filters are one-line InvalidArgument errors naming the problem") {
  struct Bad {
    const char* json;
    const char* says;
  };
  for (const Bad& bad : std::vector<Bad>{
           {R"({"a": 1)", "not valid JSON"},
           {R"([1, 2])", "expected an object"},
           {R"({"a": {"$regex": "x"}})", "unknown operator '$regex'"},
           {R"({"$nor": []})", "unknown operator '$nor'"},
           {R"({"a": {"$gt": "2020"}})", "$gt on 'a' needs a number"},
           {R"({"a": {"$in": "x"}})", "$in on 'a' needs a list"},
           {R"({"a": {"$in": [[1]]}})", "needs a string, number or bool"},
           {R"({"a": {"$contains": 3}})", "$contains on 'a' needs a string"},
           {R"({"$or": []})", "$or needs a non-empty list"},
           {R"({"$and": {"a": 1}})", "$and needs a non-empty list"},
           {R"({"a": {}})", "empty operator object"},
           {R"({"a": null})", "needs a string, number or bool"},
           {R"({"": 1})", "empty field name"},
       }) {
    Filter filter;
    Status s = Filter::parse(bad.json, &filter);
    INFO(bad.json << " -> " << s.ToString());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message().find(bad.says) != std::string::npos);
    CHECK(s.message().find('\n') == std::string::npos);
  }
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"$not": )";
  deep += R"({"a": 1})" + std::string(100, '}');
  Filter filter;
  CHECK(Filter::parse(deep, &filter).code() == Code::kInvalidArgument);
  REQUIRE(Filter::parse("{}", &filter).ok());
  CHECK(filter.matches_all());
}

TEST_CASE("Bad metadata is refused with the record named and nothing written") {
  TempDir dir("filter-bad-metadata");
  auto store = open_store(dir / "store", 2);
  const std::vector<float> v = {1, 0};
  struct Bad {
    std::string json;
    const char* says;
  };
  std::string big_list = "[";
  for (int i = 0; i < 1100; ++i) big_list += std::string(i ? "," : "") + "\"x\"";
  big_list += "]";
  for (const Bad& bad : std::vector<Bad>{
           {"[1]", "must be a JSON object"},
           {"{", "not valid JSON"},
           {R"({"a": {"b": 1}})", "field 'a' is an object"},
           {R"({"a": [1, 2]})", "lists hold strings only"},
           {R"({"a": null})", "field 'a' is null"},
           {R"({"$a": 1})", "field name '$a'"},
           {R"({"a": )" + big_list + "}", "more than 1024 items"},
           {R"({"a": ")" + std::string(70000, 'x') + "\"}", "exceeds 65536"},
       }) {
    Status s = store->upsert_batch({{"ok", v, "", "{}"}, {"bad", v, "", bad.json}});
    INFO(s.ToString());
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK(s.message().find("record 1 ('bad')") != std::string::npos);
    CHECK(s.message().find(bad.says) != std::string::npos);
  }
  StoreStats stats;
  REQUIRE(store->stats(&stats).ok());
  CHECK(stats.count == 0);
}
