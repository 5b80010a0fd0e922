#include "core/eval/stats.h"

#include <algorithm>
#include <cmath>

#include "core/eval/random.h"

namespace embedapt {

namespace {

// The q-quantile of sorted values, interpolating linearly between order
// statistics (the default of numpy.percentile).
double quantile(const std::vector<double>& sorted, double q) {
  const double position = q * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

}  // namespace

Status bootstrap_mean_ci(const std::vector<double>& values, uint64_t seed, int resamples, double level,
                         Interval* out) {
  if (values.empty()) return Status::InvalidArgument("bootstrap: no values");
  if (resamples < 1) return Status::InvalidArgument("bootstrap: resamples must be at least 1");
  if (!(level > 0 && level < 1)) return Status::InvalidArgument("bootstrap: level must be in (0, 1)");
  SplitMix64 rng(seed);
  const size_t n = values.size();
  std::vector<double> means(static_cast<size_t>(resamples));
  for (double& mean : means) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += values[rng.below(n)];
    mean = sum / static_cast<double>(n);
  }
  std::sort(means.begin(), means.end());
  out->lo = quantile(means, (1 - level) / 2);
  out->hi = quantile(means, (1 + level) / 2);
  return Status::OK();
}

Status paired_permutation_p(const std::vector<double>& a, const std::vector<double>& b, uint64_t seed,
                            int permutations, double* p_value) {
  if (a.empty() || a.size() != b.size()) {
    return Status::InvalidArgument(
        "permutation test: need two score lists of the same non-zero length, got " +
        std::to_string(a.size()) + " and " + std::to_string(b.size()));
  }
  if (permutations < 1) return Status::InvalidArgument("permutation test: permutations must be at least 1");
  // Queries where a and b agree contribute 0 under every sign; only the rest matter.
  std::vector<double> diffs;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) diffs.push_back(a[i] - b[i]);
  }
  if (diffs.empty()) {
    *p_value = 1;
    return Status::OK();
  }
  double observed = 0;
  for (double d : diffs) observed += d;
  observed = std::fabs(observed);
  // Sums that equal the observed one up to rounding count as extreme.
  const double tolerance = 1e-9 * std::max(1.0, observed);

  SplitMix64 rng(seed);
  int extreme = 0;
  for (int p = 0; p < permutations; ++p) {
    double sum = 0;
    uint64_t bits = 0;
    for (size_t i = 0; i < diffs.size(); ++i) {
      if (i % 64 == 0) bits = rng.next();
      sum += (bits & 1) ? diffs[i] : -diffs[i];
      bits >>= 1;
    }
    if (std::fabs(sum) >= observed - tolerance) ++extreme;
  }
  *p_value = (1.0 + extreme) / (1.0 + permutations);
  return Status::OK();
}

}  // namespace embedapt
