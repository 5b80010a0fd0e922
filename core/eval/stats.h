// Statistics over per-query scores: how sure a mean is, and whether two
// systems scored on the same queries really differ.
//
// Both use SplitMix64 seeded by the caller, so a result is reproducible on any
// platform. Inputs are per-query values such as hit (0/1) or reciprocal rank.
#pragma once

#include <cstdint>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct Interval {
  double lo = 0;
  double hi = 0;
};

// The percentile bootstrap confidence interval of the mean of `values`:
// `resamples` means of n values drawn with replacement; the interval runs
// from the (1 - level) / 2 to the (1 + level) / 2 quantile of those means.
// Code::kInvalidArgument if `values` is empty, resamples < 1 or level is not in (0, 1).
Status bootstrap_mean_ci(const std::vector<double>& values, uint64_t seed, int resamples, double level,
                         Interval* out);

// A paired sign-flip permutation test of H0: mean(a - b) = 0, two-sided.
// Under H0 each per-query difference is as likely positive as negative, so
// the observed |mean difference| is compared with `permutations` means of
// the differences with random signs; p = (1 + #{as extreme}) / (1 + permutations),
// never 0. p = 1 when a and b agree on every query. a and b must have the
// same non-zero length (Code::kInvalidArgument otherwise).
Status paired_permutation_p(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed,
                            int permutations, double* p_value);

}  // namespace embedapt
