// The C ABI: a round trip through every call, error codes with messages, and
// the header compiling as C.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "embedapt/embedapt.h"

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
  embedapt_results_free(results);

  float got[3] = {};
  void* got_payload = nullptr;
  REQUIRE(embedapt_get(store, "a", got, 3, &got_payload, &len, &error) == EMBEDAPT_OK);
  CHECK(std::memcmp(got, a, sizeof a) == 0);
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

TEST_CASE("embedapt.h compiles as C", "[c_api]") {
  std::string source = temp_path("check.c");
  std::ofstream(source) << "#include \"embedapt/embedapt.h\"\n"
                           "int main(void) {\n"
                           "  embedapt_store* s = 0;\n"
                           "  char* e = 0;\n"
                           "  embedapt_code c = embedapt_open(\"x\", 4, \"cosine\", \"Flat\", &s, &e);\n"
                           "  return c == EMBEDAPT_OK ? 0 : 1;\n"
                           "}\n";
  std::string command = "cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only -I\"" EMBEDAPT_SOURCE_DIR
                        "/plugin/include\" \"" +
                        source + "\"";
  CHECK(std::system(command.c_str()) == 0);
  fs::remove(source);
}
