// What the benchmark programs share: flags with --help, seeded unit vectors,
// filling a store, timing and order statistics. Header only: every .cpp in
// tools/bench is a program of its own.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "embedapt/store.h"

namespace embedapt::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Ends the program with `program: what: <the error>` unless `s` is ok.
inline void die(const char* program, const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s: %s\n", program, what, s.ToString().c_str());
  std::exit(1);
}

// "--flag value" pairs, each flag one of `known`. --help or -h prints
// `usage` and exits 0 (a benchmark never starts a run when asked for help);
// an unknown flag, a missing value or a value that is not a number where a
// number is wanted prints the problem and `usage` and exits 2.
class Flags {
 public:
  Flags(int argc, char** argv, const char* program, const char* usage, const std::set<std::string>& known)
      : program_(program), usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        std::fputs(usage, stdout);
        std::exit(0);
      }
      if (!known.count(flag)) fail("unknown flag " + flag);
      if (i + 1 == argc) fail(flag + " needs a value");
      values_[flag] = argv[++i];
    }
  }

  std::string text(const std::string& flag, const std::string& fallback) const {
    auto it = values_.find(flag);
    return it == values_.end() ? fallback : it->second;
  }
  double number(const std::string& flag, double fallback) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    char* end = nullptr;
    const double value = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0' || value < 0)
      fail(flag + " needs a non-negative number, got '" + it->second + "'");
    return value;
  }
  // `text` split at `separator`; empty text: no items.
  std::vector<std::string> list(const std::string& flag, const std::vector<std::string>& fallback,
                                char separator) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return fallback;
    std::vector<std::string> items;
    for (size_t start = 0; start < it->second.size();) {
      size_t end = it->second.find(separator, start);
      if (end == std::string::npos) end = it->second.size();
      items.push_back(it->second.substr(start, end - start));
      start = end + 1;
    }
    return items;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    std::fprintf(stderr, "%s: %s\n%s", program_, problem.c_str(), usage_);
    std::exit(2);
  }

  const char* program_;
  const char* usage_;
  std::map<std::string, std::string> values_;
};

// `n` seeded random unit vectors of `dim` floats, one after another.
inline std::vector<float> unit_vectors(size_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (size_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int j = 0; j < dim; ++j) norm += std::pow(v[i * dim + j] = normal(rng), 2);
    for (int j = 0; j < dim; ++j) v[i * dim + j] = static_cast<float>(v[i * dim + j] / std::sqrt(norm));
  }
  return v;
}

// Upserts rows [begin, end) of `vectors` as records with ids "<row>", in
// batches of `batch`, each followed by sync() when `durable`; `metadata(row)`
// (if given) is each record's metadata. Returns the seconds the writes took
// (not the building of the records); exits on error.
inline double fill(const char* program, Store* store, const std::vector<float>& vectors, int dim,
                   size_t begin, size_t end, size_t batch, bool durable,
                   const std::function<std::string(size_t)>& metadata = nullptr) {
  double seconds = 0;
  std::vector<Record> records;
  for (size_t first = begin; first < end; first += batch) {
    records.clear();
    for (size_t i = first; i < std::min(end, first + batch); ++i) {
      Record r;
      r.id = std::to_string(i);
      r.vector.assign(vectors.begin() + i * dim, vectors.begin() + (i + 1) * dim);
      if (metadata) r.metadata = metadata(i);
      records.push_back(std::move(r));
    }
    const auto t = Clock::now();
    die(program, store->upsert_batch(records), "upsert_batch");
    if (durable) die(program, store->sync(), "sync");
    seconds += seconds_since(t);
  }
  return seconds;
}

// The p-quantile (0..1) of `v`, the element at that rank.
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

}  // namespace embedapt::bench
