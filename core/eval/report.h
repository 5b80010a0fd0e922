// The evaluator's report for people and programs: the JSON `embedapt eval
// --json` writes and the self-contained HTML page `--html` writes.
#pragma once

#include <string>
#include <vector>

#include "core/eval/evaluator.h"

namespace embedapt {

// {"results": [...], "comparisons": [...]}: each system's means, intervals
// and query count, and each paired comparison.
std::string report_json(const EvalReport& report);

// hit@k and MRR@k of one system for k = 1..kCurveDepth (index k - 1), from
// the rank of each query's first relevant result.
struct Curve {
  std::vector<double> hit;
  std::vector<double> mrr;
};
Curve rank_curve(const SystemResult& result);

// One HTML page with no external assets (styles inline, charts as inline SVG):
// the table with intervals, a line chart of hit@k and MRR@k for k = 1..20
// per system (the base drawn faintly behind each adapter), and the paired
// comparisons. `title` heads the page (e.g. the store and the dataset).
std::string report_html(const EvalReport& report, const std::string& title);

}  // namespace embedapt
