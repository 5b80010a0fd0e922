// IdNames (index/id_names.h) against std::unordered_map under seeded random
// sets, renames and erases: the same names, the same size, through growth and
// through erases that shift runs wrapping around the table's end.
#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>

#include "index/id_names.h"
#include "tests/support/catch.h"

using embedapt::IdNames;

namespace {

void check_same(const IdNames& names, const std::unordered_map<int64_t, std::string>& expected,
                int64_t max_iid) {
  REQUIRE(names.size() == expected.size());
  for (int64_t iid = 0; iid <= max_iid; ++iid) {
    const std::string* found = names.find(iid);
    auto it = expected.find(iid);
    if (it == expected.end()) {
      REQUIRE(found == nullptr);
    } else {
      REQUIRE(found != nullptr);
      REQUIRE(*found == it->second);
    }
  }
}

}  // namespace

TEST_CASE("IdNames: an empty table names nothing") {
  IdNames names;
  CHECK(names.size() == 0);
  CHECK(names.find(1) == nullptr);
  CHECK(names.find(0) == nullptr);
  names.erase(1);
  names.prefetch(1);
  CHECK(names.size() == 0);
}

TEST_CASE("IdNames: set, rename and erase agree with std::unordered_map") {
  for (uint32_t seed : {1u, 2u, 3u}) {
    // Few distinct iids for many operations: long probe runs, and erases in
    // the middle of them, in tables of every size from 16 slots up.
    const int64_t max_iid = seed == 3 ? 5000 : 300;
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int64_t> iid(1, max_iid);
    std::unordered_map<int64_t, std::string> expected;
    IdNames names;
    for (int step = 0; step < 20000; ++step) {
      const int64_t key = iid(rng);
      if (rng() % 3 == 0) {
        expected.erase(key);
        names.erase(key);
      } else {
        std::string name = "doc-" + std::to_string(key) + "-" + std::to_string(step);  // past SSO
        expected[key] = name;
        names.set(key, name);
      }
      if (step % 2000 == 0) check_same(names, expected, max_iid);
    }
    check_same(names, expected, max_iid);
    for (int64_t key = 1; key <= max_iid; key += 2) {
      expected.erase(key);
      names.erase(key);
    }
    check_same(names, expected, max_iid);
  }
}

TEST_CASE("IdNames: iids handed out in sequence, then every one erased") {
  IdNames names;
  for (int64_t iid = 1; iid <= 100000; ++iid) names.set(iid, std::to_string(iid));
  REQUIRE(names.size() == 100000);
  REQUIRE(*names.find(77777) == "77777");
  for (int64_t iid = 100000; iid >= 1; --iid) names.erase(iid);
  CHECK(names.size() == 0);
  CHECK(names.find(1) == nullptr);
}
