// The C ABI: a round trip through every call, error codes with messages, a
// throwing adapter reported as a code, and the header compiling as C.
// (tests/c/loop.c runs the learning loop through it from a C program.)
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "embedapt/adapter_plugin.h"
#include "embedapt/embedapt.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"

namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("embedapt-capi-" + std::to_string(getpid()) + "-" + name)).string();
}

}  // namespace

TEST_CASE("C ABI round trip", "[c_api]") {
  std::string dir = temp_path("store");
  fs::remove_all(dir);
  embedapt_store* store = nullptr;
  char* error = nullptr;
  REQUIRE(embedapt_open(dir.c_str(), 3, "l2", "Flat", &store, &error) == EMBEDAPT_OK);
  CHECK(embedapt_dim(store) == 3);
  float a[3] = {1, 0, 0}, b[3] = {0, 1, 0};
  REQUIRE(embedapt_upsert(store, "a", a, 3, "alpha", 5, &error) == EMBEDAPT_OK);
  REQUIRE(embedapt_upsert(store, "b", b, 3, nullptr, 0, &error) == EMBEDAPT_OK);
  CHECK(embedapt_count(store) == 2);

  embedapt_results* results = nullptr;
  REQUIRE(embedapt_search(store, a, 3, 2, &results, &error) == EMBEDAPT_OK);
  REQUIRE(embedapt_results_count(results) == 2);
  CHECK(std::string(embedapt_results_id(results, 0)) == "a");
  CHECK(embedapt_results_score(results, 0) == Approx(0.0f));
  CHECK(embedapt_results_score(results, 1) == Approx(2.0f));
  size_t len = 0;
  const void* payload = embedapt_results_payload(results, 0, &len);
  CHECK(std::string(static_cast<const char*>(payload), len) == "alpha");
  // The accessors' promise for a NULL handle or an index past the end holds
  // for the metadata too (it read out of bounds, or segfaulted).
  CHECK(embedapt_results_metadata(results, 2) == nullptr);
  CHECK(embedapt_results_metadata(results, 1000000) == nullptr);
  CHECK(embedapt_results_metadata(nullptr, 0) == nullptr);
  embedapt_results_free(results);
  embedapt_search_options ids_only;
  embedapt_search_options_init(&ids_only);
  ids_only.k = 1;
  ids_only.ids_only = 1;
  REQUIRE(embedapt_search_with(store, a, 3, &ids_only, &results, &error) == EMBEDAPT_OK);
  CHECK(embedapt_results_payload(results, 0, &len) == nullptr);  // as ids_only promises (it was "")
  CHECK(len == 0);
  embedapt_results_free(results);
  // A wrong dim is refused before `dim` floats are read (1 << 28 of them
  // from a 3-float vector segfaulted).
  CHECK(embedapt_upsert_metadata(store, "c", a, size_t{1} << 28, nullptr, 0, "{}", nullptr) ==
        EMBEDAPT_INVALID_ARGUMENT);
  // A zeroed options struct means the defaults (threads and hidden 0 were refused).
  embedapt_retrain_options zeroed{};
  CHECK(embedapt_retrain(store, &zeroed, nullptr, &error) != EMBEDAPT_OK);  // no log yet
  REQUIRE(error != nullptr);
  CHECK(std::string(error).find("threads") == std::string::npos);
  embedapt_free(error);
  error = nullptr;

  float got[3] = {};
  void* got_payload = nullptr;
  REQUIRE(embedapt_get(store, "a", got, 3, &got_payload, &len, &error) == EMBEDAPT_OK);
  CHECK(std::vector<float>(got, got + 3) == std::vector<float>(a, a + 3));
  CHECK(std::string(static_cast<char*>(got_payload), len) == "alpha");
  embedapt_free(got_payload);

  // Errors: a code and a message naming the problem.
  float bad[2] = {1, 2};
  CHECK(embedapt_upsert(store, "c", bad, 2, nullptr, 0, &error) == EMBEDAPT_INVALID_ARGUMENT);
  REQUIRE(error != nullptr);
  CHECK(std::string(error).find("dimension") != std::string::npos);
  embedapt_free(error);
  error = nullptr;
  CHECK(embedapt_remove(store, "zzz", &error) == EMBEDAPT_NOT_FOUND);
  CHECK(std::string(error).find("zzz") != std::string::npos);
  embedapt_free(error);
  CHECK(embedapt_remove(store, "b", nullptr) == EMBEDAPT_OK);  // NULL error pointer is allowed
  CHECK(embedapt_get(store, "b", got, 3, nullptr, nullptr, nullptr) == EMBEDAPT_NOT_FOUND);

  embedapt_store* second = nullptr;
  CHECK(embedapt_open(dir.c_str(), 0, nullptr, nullptr, &second, nullptr) == EMBEDAPT_BUSY);
  REQUIRE(embedapt_flush(store, nullptr) == EMBEDAPT_OK);
  embedapt_close(store);

  REQUIRE(embedapt_open(dir.c_str(), 0, nullptr, nullptr, &store, nullptr) == EMBEDAPT_OK);
  CHECK(embedapt_count(store) == 1);
  CHECK(embedapt_open(dir.c_str(), 4, nullptr, nullptr, &second, nullptr) == EMBEDAPT_BUSY);
  embedapt_close(store);
  CHECK(embedapt_open(dir.c_str(), 4, nullptr, nullptr, &store, nullptr) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_open(dir.c_str(), 3, "cosine-ish", nullptr, &store, nullptr) == EMBEDAPT_INVALID_ARGUMENT);
  embedapt_close(nullptr);
  fs::remove_all(dir);
}

namespace {

// An adapter kind whose net throws a C++ exception that is not LibTorch's, as
// an app's own registered kind might.
class ThrowingNet : public embedapt::AdapterNet {
 public:
  torch::Tensor forward(const torch::Tensor&) override { throw std::runtime_error("the net threw"); }
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() override { return {{"w", weight_}}; }

 private:
  torch::Tensor weight_ = torch::zeros({1});
};

}  // namespace

TEST_CASE("An adapter that throws fails the C call with a code and its message; the store goes on",
          "[c_api]") {
  REQUIRE(embedapt::register_adapter("throwing", [](const embedapt::AdapterConfig&,
                                                    std::shared_ptr<embedapt::AdapterNet>* out) {
            *out = std::make_shared<ThrowingNet>();
            return embedapt::Status::OK();
          }).ok());
  std::string dir = temp_path("throwing");
  fs::remove_all(dir);
  {
    embedapt::Options options;
    options.dim = 3;
    std::unique_ptr<embedapt::Store> store;
    REQUIRE(embedapt::Store::open(dir, options, &store).ok());
    float a[3] = {1, 0, 0};
    REQUIRE(store->upsert("a", a, 3, "").ok());
    ThrowingNet net;
    embedapt::AdapterVersion version;
    version.config_json =
        R"({"kind": "throwing", "in_dim": 3, "out_dim": 3, "side": "query", "embedder": ""})";
    REQUIRE(embedapt::save_adapter_weights(net, &version.weights).ok());
    REQUIRE(store->put_adapter(&version).ok());
  }
  embedapt_store* store = nullptr;
  REQUIRE(embedapt_open(dir.c_str(), 0, nullptr, nullptr, &store, nullptr) == EMBEDAPT_OK);
  char* error = nullptr;
  REQUIRE(embedapt_activate(store, 1, &error) == EMBEDAPT_OK);
  float q[3] = {1, 0, 0};
  embedapt_results* results = nullptr;
  CHECK(embedapt_search(store, q, 3, 1, &results, &error) == EMBEDAPT_INVALID_ARGUMENT);
  REQUIRE(error != nullptr);
  CHECK(std::string(error) == "applying adapter: throwing adapter failed: the net threw");
  CHECK(results == nullptr);
  embedapt_free(error);
  REQUIRE(embedapt_rollback(store, nullptr) == EMBEDAPT_OK);  // the store still works
  REQUIRE(embedapt_search(store, q, 3, 1, &results, nullptr) == EMBEDAPT_OK);
  CHECK(embedapt_results_count(results) == 1);
  embedapt_results_free(results);
  embedapt_close(store);
  fs::remove_all(dir);
}

TEST_CASE("C ABI: metadata, filtered search and remove_matching", "[c_api]") {
  std::string dir = temp_path("filter");
  fs::remove_all(dir);
  embedapt_store* store = nullptr;
  char* error = nullptr;
  REQUIRE(embedapt_open(dir.c_str(), 2, "l2", "Flat", &store, &error) == EMBEDAPT_OK);
  float a[2] = {0, 0}, b[2] = {1, 0}, c[2] = {2, 0};
  REQUIRE(embedapt_upsert_metadata(store, "a", a, 2, nullptr, 0, R"({"lang":"da"})", &error) == EMBEDAPT_OK);
  REQUIRE(embedapt_upsert_metadata(store, "b", b, 2, nullptr, 0, R"({"lang":"de"})", &error) == EMBEDAPT_OK);
  REQUIRE(embedapt_upsert_metadata(store, "c", c, 2, nullptr, 0, nullptr, &error) == EMBEDAPT_OK);

  embedapt_results* results = nullptr;
  REQUIRE(embedapt_search_filtered(store, a, 2, 3, R"({"lang": "de"})", &results, &error) == EMBEDAPT_OK);
  REQUIRE(embedapt_results_count(results) == 1);
  CHECK(std::string(embedapt_results_id(results, 0)) == "b");
  CHECK(std::string(embedapt_results_metadata(results, 0)) == R"({"lang":"de"})");
  embedapt_results_free(results);
  REQUIRE(embedapt_search_filtered(store, a, 2, 3, nullptr, &results, &error) == EMBEDAPT_OK);
  CHECK(embedapt_results_count(results) == 3);
  CHECK(std::string(embedapt_results_metadata(results, 2)).empty());
  embedapt_results_free(results);

  // A bad filter is an error with a message, never an empty result.
  CHECK(embedapt_search_filtered(store, a, 2, 3, R"({"lang": {"$like": "d"}})", &results, &error) ==
        EMBEDAPT_INVALID_ARGUMENT);
  REQUIRE(error != nullptr);
  CHECK(std::string(error).find("$like") != std::string::npos);
  embedapt_free(error);
  error = nullptr;
  CHECK(embedapt_upsert_metadata(store, "d", a, 2, nullptr, 0, "[1]", &error) == EMBEDAPT_INVALID_ARGUMENT);
  embedapt_free(error);
  error = nullptr;

  char* metadata = nullptr;
  REQUIRE(embedapt_get_metadata(store, "a", &metadata, &error) == EMBEDAPT_OK);
  CHECK(std::string(metadata) == R"({"lang":"da"})");
  embedapt_free(metadata);
  uint64_t removed = 0;
  REQUIRE(embedapt_remove_matching(store, R"({"lang": {"$in": ["da", "de"]}})", &removed, &error) ==
          EMBEDAPT_OK);
  CHECK(removed == 2);
  CHECK(embedapt_count(store) == 1);
  CHECK(embedapt_remove_matching(nullptr, "{}", &removed, nullptr) == EMBEDAPT_INVALID_ARGUMENT);
  embedapt_close(store);
  fs::remove_all(dir);
}

TEST_CASE("C ABI: search knobs and ids-only hits", "[c_api]") {
  const int dim = 8, n = 1000;
  std::vector<float> vectors(size_t(n) * dim);
  for (size_t i = 0; i < vectors.size(); ++i) vectors[i] = float(std::sin(0.37 * i + 0.11 * (i % 7)));
  char* error = nullptr;
  // The hits of `options` on store `s`: ids, scores, payload sizes and metadata, in order.
  auto hits_of = [&](embedapt_store* s, const embedapt_search_options* options) {
    embedapt_results* results = nullptr;
    embedapt_code code = embedapt_search_with(s, vectors.data(), dim, options, &results, &error);
    INFO((error ? error : ""));
    REQUIRE(code == EMBEDAPT_OK);
    std::vector<std::tuple<std::string, float, size_t, std::string>> out;
    for (size_t i = 0; i < embedapt_results_count(results); ++i) {
      size_t len = 99;
      const void* payload = embedapt_results_payload(results, i, &len);
      if (payload == nullptr) CHECK(len == 0);
      out.emplace_back(embedapt_results_id(results, i), embedapt_results_score(results, i), len,
                       embedapt_results_metadata(results, i));
    }
    embedapt_results_free(results);
    return out;
  };
  auto refused = [&](embedapt_store* s, const embedapt_search_options& options, const std::string& says) {
    embedapt_results* results = nullptr;
    CHECK(embedapt_search_with(s, vectors.data(), dim, &options, &results, &error) ==
          EMBEDAPT_INVALID_ARGUMENT);
    REQUIRE(error != nullptr);
    CHECK(std::string(error).find(says) != std::string::npos);
    embedapt_free(error);
    error = nullptr;
  };
  for (const char* spec : {"HNSW16", "IVF16,Flat"}) {
    INFO(spec);
    const bool hnsw = std::string(spec) == "HNSW16";
    std::string dir = temp_path(std::string("knobs-") + spec);
    fs::remove_all(dir);
    embedapt_store* store = nullptr;
    REQUIRE(embedapt_open(dir.c_str(), dim, "cosine", spec, &store, &error) == EMBEDAPT_OK);
    for (int i = 0; i < n; ++i) {
      const std::string id = "d" + std::to_string(i),
                        metadata = "{\"even\":" + std::string(i % 2 ? "false}" : "true}");
      REQUIRE(embedapt_upsert_metadata(store, id.c_str(), &vectors[size_t(i) * dim], dim, "p", 1,
                                       metadata.c_str(), &error) == EMBEDAPT_OK);
    }
    embedapt_search_options options;
    embedapt_search_options_init(&options);
    CHECK(options.k == 10);
    CHECK(options.ids_only == 0);
    CHECK((hits_of(store, nullptr) == hits_of(store, &options)));
    // The knob at its widest finds the query's own record first.
    (hnsw ? options.ef_search : options.nprobe) = hnsw ? 500 : 16;
    options.filter = R"({"even": true})";
    auto full = hits_of(store, &options);
    REQUIRE(full.size() == 10);
    CHECK(std::get<0>(full[0]) == "d0");
    CHECK(std::get<2>(full[0]) == 1);
    CHECK(std::get<3>(full[0]) == R"({"even":true})");
    options.ids_only = 1;
    auto ids = hits_of(store, &options);
    REQUIRE(ids.size() == full.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      CHECK(std::get<0>(ids[i]) == std::get<0>(full[i]));
      CHECK(std::get<1>(ids[i]) == std::get<1>(full[i]));
      CHECK(std::get<2>(ids[i]) == 0);
      CHECK(std::get<3>(ids[i]).empty());
    }

    embedapt_search_options bad = options;
    (hnsw ? bad.nprobe : bad.ef_search) = 4;
    refused(store, bad, hnsw ? "nprobe: applies to IVF indexes" : "ef_search: applies to HNSW indexes");
    bad = options;
    (hnsw ? bad.ef_search : bad.nprobe) = hnsw ? -1 : 17;
    refused(store, bad, hnsw ? "ef_search: must be in 1.." : "nprobe: must be in 1..16");
    bad = options;
    bad.k = 0;
    refused(store, bad, "k must be positive");
    bad = options;
    bad.filter = R"({"even": {"$like": 1}})";
    refused(store, bad, "$like");
    embedapt_close(store);
    fs::remove_all(dir);
  }
}

TEST_CASE("embedapt.h compiles as C", "[c_api]") {
  std::string source = temp_path("check.c");
  std::ofstream(source) << "#include \"embedapt/embedapt.h\"\n"
                           "int main(void) {\n"
                           "  embedapt_store* s = 0;\n"
                           "  char* e = 0;\n"
                           "  embedapt_search_options o;\n"
                           "  embedapt_code c = embedapt_open(\"x\", 4, \"cosine\", \"Flat\", &s, &e);\n"
                           "  embedapt_search_options_init(&o);\n"
                           "  return c == EMBEDAPT_OK ? 0 : 1;\n"
                           "}\n";
  std::string command = "cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I\"" EMBEDAPT_SOURCE_DIR
                        "/plugin/include\" \"" +
                        source + "\"";
  CHECK(std::system(command.c_str()) == 0);
  fs::remove(source);
}
