// The learning loop through the installed public headers only: documents in,
// searches logged with the results users chose, retrain, better searches.
//
// The task is synthetic with a known answer: each query is its document plus
// noise, rotated by a fixed distortion (a mismatched query encoder).
#include <embedapt/learn.h>
#include <embedapt/store.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kDim = 16, kDocs = 120, kPerDoc = 3;

int fail(const std::string& what, const embedapt::Status& s) {
  std::fprintf(stderr, "app: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: app STORE_DIR\n");
    return 2;
  }
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> docs(kDocs * kDim), queries, distortion(kDim * kDim);
  for (float& x : docs) x = normal(rng);
  for (int r = 0; r < kDim; ++r)
    for (int c = 0; c < kDim; ++c) distortion[r * kDim + c] = (r == c ? 1.0f : 0.0f) + 0.45f * normal(rng);
  for (int d = 0; d < kDocs; ++d) {
    for (int k = 0; k < kPerDoc; ++k) {
      std::vector<float> clean(kDim);
      for (int c = 0; c < kDim; ++c) clean[c] = docs[d * kDim + c] + 0.35f * normal(rng);
      for (int r = 0; r < kDim; ++r) {
        float seen = 0;
        for (int c = 0; c < kDim; ++c) seen += distortion[r * kDim + c] * clean[c];
        queries.push_back(seen);
      }
    }
  }

  embedapt::Options options;
  options.dim = kDim;
  std::unique_ptr<embedapt::Store> store;
  embedapt::Status s = embedapt::Store::open(argv[1], options, &store);
  if (!s.ok()) return fail("open", s);
  for (int d = 0; d < kDocs; ++d) {
    s = store->upsert("doc" + std::to_string(d), &docs[d * kDim], kDim, "");
    if (!s.ok()) return fail("upsert", s);
  }

  // Search, then log what was shown and what the user chose; count hit@1.
  auto run_queries = [&](bool log, int* top1) -> embedapt::Status {
    *top1 = 0;
    for (int q = 0; q < kDocs * kPerDoc; ++q) {
      std::vector<embedapt::Hit> hits;
      EMBEDAPT_RETURN_IF_ERROR(store->search(&queries[q * kDim], kDim, 5, &hits));
      const std::string chosen = "doc" + std::to_string(q / kPerDoc);
      *top1 += !hits.empty() && hits[0].id == chosen;
      if (!log) continue;
      std::vector<std::string> shown;
      for (const auto& h : hits) shown.push_back(h.id);
      uint64_t query_id = 0;
      EMBEDAPT_RETURN_IF_ERROR(store->log_query(&queries[q * kDim], kDim, shown, &query_id));
      EMBEDAPT_RETURN_IF_ERROR(store->log_hit(query_id, chosen));
    }
    return embedapt::Status::OK();
  };
  int before = 0, after = 0;
  if (!(s = run_queries(/*log=*/true, &before)).ok()) return fail("searching and logging", s);

  embedapt::RetrainOptions retrain_options;
  retrain_options.epochs = 12;
  retrain_options.lr = 0.01;
  embedapt::RetrainReport report;
  if (!(s = embedapt::retrain(store.get(), retrain_options, &report)).ok()) return fail("retrain", s);
  if (!(s = run_queries(/*log=*/false, &after)).ok()) return fail("searching", s);
  std::printf("retrain: %s version %llu; %s; hit@1 %d -> %d of %d\n", embedapt::DecisionName(report.decision),
              static_cast<unsigned long long>(report.version), report.summary.c_str(), before, after,
              kDocs * kPerDoc);
  const bool ok = report.decision == embedapt::RetrainReport::Decision::kActivated && after > before;
  return ok ? 0 : 1;
}
