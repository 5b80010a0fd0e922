// score_ranking on hand-computed rankings, and the bootstrap interval and
// permutation test on synthetic data whose truth is known.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "core/common/metrics.h"
#include "core/eval/stats.h"

using embedapt::Interval;
using embedapt::RankMetrics;
using embedapt::score_ranking;

namespace {

double log2_discount(int rank) { return 1.0 / std::log2(rank + 2.0); }  // 0-based rank

}  // namespace

TEST_CASE("a relevant document at rank 1 scores everything 1", "[metrics]") {
  RankMetrics m = score_ranking({true, false, false, false, false}, 1, 5);
  CHECK(m.hit == 1);
  CHECK(m.mrr == 1);
  CHECK(m.ndcg_at_10 == Approx(1));
  CHECK(m.recall_at_k == 1);
  CHECK(m.recall_at_10 == 1);
}

TEST_CASE("MRR is the reciprocal rank of the first relevant document", "[metrics]") {
  RankMetrics m = score_ranking({false, false, true, false, true}, 2, 5);
  CHECK(m.hit == 1);
  CHECK(m.mrr == Approx(1.0 / 3));
  CHECK(m.recall_at_k == Approx(1.0));
  // DCG = 1/log2(4) + 1/log2(6); ideal = 1/log2(2) + 1/log2(3).
  double dcg = log2_discount(2) + log2_discount(4);
  double ideal = log2_discount(0) + log2_discount(1);
  CHECK(m.ndcg_at_10 == Approx(dcg / ideal));
}

TEST_CASE("nothing past k counts for hit, MRR and recall@k, but does for the @10 metrics", "[metrics]") {
  // Relevant at rank 6 (0-based 5); k = 5.
  std::vector<bool> ranking(10, false);
  ranking[5] = true;
  RankMetrics m = score_ranking(ranking, 1, 5);
  CHECK(m.hit == 0);
  CHECK(m.mrr == 0);
  CHECK(m.recall_at_k == 0);
  CHECK(m.recall_at_10 == 1);
  CHECK(m.ndcg_at_10 == Approx(log2_discount(5)));

  RankMetrics wider = score_ranking(ranking, 1, 6);
  CHECK(wider.hit == 1);
  CHECK(wider.mrr == Approx(1.0 / 6));
}

TEST_CASE("several relevant documents: recall counts those not retrieved", "[metrics]") {
  // Three relevant, two retrieved at ranks 2 and 4 of 5; the third was never returned.
  RankMetrics m = score_ranking({false, true, false, true, false}, 3, 5);
  CHECK(m.hit == 1);
  CHECK(m.mrr == Approx(0.5));
  CHECK(m.recall_at_k == Approx(2.0 / 3));
  CHECK(m.recall_at_10 == Approx(2.0 / 3));
  double ideal = log2_discount(0) + log2_discount(1) + log2_discount(2);
  CHECK(m.ndcg_at_10 == Approx((log2_discount(1) + log2_discount(3)) / ideal));

  // Only two of them fit in k = 2: recall@2 counts one of three.
  RankMetrics top2 = score_ranking({false, true, false, true, false}, 3, 2);
  CHECK(top2.recall_at_k == Approx(1.0 / 3));
}

TEST_CASE("an empty ranking or no relevant documents scores zero", "[metrics]") {
  RankMetrics empty = score_ranking({}, 1, 5);
  CHECK(empty.hit == 0);
  CHECK(empty.mrr == 0);
  CHECK(empty.ndcg_at_10 == 0);
  RankMetrics none = score_ranking({false, false}, 0, 5);
  CHECK(none.recall_at_k == 0);
  CHECK(none.ndcg_at_10 == 0);
  RankMetrics short_list = score_ranking({false, true}, 1, 5);  // fewer results than k
  CHECK(short_list.mrr == Approx(0.5));
}

TEST_CASE("the bootstrap interval covers the true mean about 95% of the time", "[stats]") {
  // 200 synthetic experiments of 300 Bernoulli(0.7) draws each.
  std::mt19937_64 gen(42);
  int covered = 0;
  const int experiments = 200;
  for (int e = 0; e < experiments; ++e) {
    std::vector<double> values(300);
    for (double& v : values) v = (gen() % 1000) < 700 ? 1.0 : 0.0;
    Interval ci;
    REQUIRE(embedapt::bootstrap_mean_ci(values, e, 2000, 0.95, &ci).ok());
    REQUIRE(ci.lo <= ci.hi);
    if (ci.lo <= 0.7 && 0.7 <= ci.hi) ++covered;
  }
  // Binomial(200, 0.95): 181 is more than four standard deviations below 190.
  CHECK(covered >= 181);
  CHECK(covered <= 200);
}

TEST_CASE("the bootstrap interval is seeded and has the binomial width", "[stats]") {
  std::vector<double> values(400, 0.0);
  for (size_t i = 0; i < 200; ++i) values[i] = 1.0;  // mean 0.5, standard error 0.025
  Interval a, b;
  REQUIRE(embedapt::bootstrap_mean_ci(values, 7, 10000, 0.95, &a).ok());
  REQUIRE(embedapt::bootstrap_mean_ci(values, 7, 10000, 0.95, &b).ok());
  CHECK(a.lo == b.lo);
  CHECK(a.hi == b.hi);
  CHECK(a.lo == Approx(0.5 - 1.96 * 0.025).margin(0.006));
  CHECK(a.hi == Approx(0.5 + 1.96 * 0.025).margin(0.006));

  Interval constant;
  REQUIRE(embedapt::bootstrap_mean_ci({0.25, 0.25, 0.25}, 1, 100, 0.95, &constant).ok());
  CHECK(constant.lo == 0.25);
  CHECK(constant.hi == 0.25);
  CHECK(embedapt::bootstrap_mean_ci({}, 1, 100, 0.95, &constant).code() == embedapt::Code::kInvalidArgument);
  CHECK(embedapt::bootstrap_mean_ci({1.0}, 1, 100, 1.5, &constant).code() ==
        embedapt::Code::kInvalidArgument);
}

TEST_CASE("the permutation test finds a real paired difference and not a fake one", "[stats]") {
  std::mt19937_64 gen(3);
  const size_t n = 500;
  std::vector<double> base(n), better(n), noise(n);
  for (size_t i = 0; i < n; ++i) {
    base[i] = (gen() % 100) < 60 ? 1.0 : 0.0;
    // `better` fixes 15% of base's misses: about +0.06, all in one direction.
    better[i] = base[i] == 1.0 || (gen() % 100) < 15 ? 1.0 : 0.0;
    // `noise` flips 10% of the queries either way: no real difference.
    noise[i] = (gen() % 100) < 10 ? 1.0 - base[i] : base[i];
  }
  double p_real = 1, p_none = 0;
  REQUIRE(embedapt::paired_permutation_p(better, base, 11, 10000, &p_real).ok());
  REQUIRE(embedapt::paired_permutation_p(noise, base, 11, 10000, &p_none).ok());
  CHECK(p_real < 0.001);
  CHECK(p_none > 0.05);

  double p_same = 0;
  REQUIRE(embedapt::paired_permutation_p(base, base, 11, 100, &p_same).ok());
  CHECK(p_same == 1);
  double p_sign = 0;
  REQUIRE(embedapt::paired_permutation_p(base, better, 11, 10000, &p_sign).ok());
  CHECK(p_sign == Approx(p_real).margin(0.002));  // two-sided: the direction does not matter

  double unused;
  CHECK(embedapt::paired_permutation_p({1.0}, {1.0, 0.0}, 1, 10, &unused).code() ==
        embedapt::Code::kInvalidArgument);
}
