#include "core/eval/report.h"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace embedapt {

std::string report_json(const EvalReport& report) {
  nlohmann::json results = nlohmann::json::array();
  for (const SystemResult& r : report.results) {
    results.push_back({{"name", r.name},
                       {"adapter", r.source.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.source)},
                       {"n_queries", r.queries.size()},
                       {"top_k", r.top_k},
                       {"hit_rate", r.hit_rate},
                       {"mrr", r.mrr},
                       {"ndcg@10", r.ndcg_at_10},
                       {"recall@10", r.recall_at_10},
                       {"hit_rate_ci95", {r.hit_rate_ci95.lo, r.hit_rate_ci95.hi}},
                       {"mrr_ci95", {r.mrr_ci95.lo, r.mrr_ci95.hi}}});
  }
  nlohmann::json comparisons = nlohmann::json::array();
  for (const Comparison& c : report.comparisons) {
    comparisons.push_back(
        {{"a", c.a}, {"b", c.b}, {"metric", c.metric}, {"delta", c.delta}, {"p_value", c.p_value}});
  }
  return nlohmann::json{{"results", results}, {"comparisons", comparisons}}.dump(2) + "\n";
}

Curve rank_curve(const SystemResult& result) {
  Curve curve{std::vector<double>(kCurveDepth, 0.0), std::vector<double>(kCurveDepth, 0.0)};
  if (result.queries.empty()) return curve;
  for (const QueryScore& q : result.queries) {
    if (q.first_relevant == 0 || q.first_relevant > kCurveDepth) continue;
    for (int k = q.first_relevant; k <= kCurveDepth; ++k) {
      curve.hit[k - 1] += 1;
      curve.mrr[k - 1] += 1.0 / q.first_relevant;
    }
  }
  const double n = static_cast<double>(result.queries.size());
  for (int i = 0; i < kCurveDepth; ++i) {
    curve.hit[i] /= n;
    curve.mrr[i] /= n;
  }
  return curve;
}

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fixed(double value, const char* format = "%.4f") {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

// Chart geometry, in SVG user units.
constexpr double kWidth = 460, kHeight = 260, kLeft = 44, kRight = 12, kTop = 12, kBottom = 36;

double x_of(int k) { return kLeft + (k - 1) * (kWidth - kLeft - kRight) / (kCurveDepth - 1); }
double y_of(double value) { return kTop + (1 - value) * (kHeight - kTop - kBottom); }

std::string polyline(const std::vector<double>& values, const char* color, const char* extra) {
  std::string points;
  for (int k = 1; k <= kCurveDepth; ++k) {
    points += fixed(x_of(k), "%.1f") + "," + fixed(y_of(values[k - 1]), "%.1f") + " ";
  }
  return std::string("<polyline fill=\"none\" stroke=\"") + color + "\" stroke-width=\"2\" " + extra +
         " points=\"" + points + "\"/>\n";
}

// hit@k and MRR@k of `system` for k = 1..20; `base` (if any) drawn dashed.
std::string chart(const SystemResult& system, const SystemResult* base) {
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(kWidth, "%.0f") +
                    "\" height=\"" + fixed(kHeight, "%.0f") +
                    "\" role=\"img\" aria-label=\"hit@k and MRR@k of " + escape(system.name) + "\">\n";
  for (int tick = 0; tick <= 4; ++tick) {  // horizontal grid at 0, .25, .5, .75, 1
    const double y = y_of(tick / 4.0);
    svg += "<line x1=\"" + fixed(kLeft, "%.0f") + "\" x2=\"" + fixed(kWidth - kRight, "%.0f") + "\" y1=\"" +
           fixed(y, "%.1f") + "\" y2=\"" + fixed(y, "%.1f") + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fixed(kLeft - 6, "%.0f") + "\" y=\"" + fixed(y + 4, "%.1f") +
           "\" text-anchor=\"end\" font-size=\"11\">" + fixed(tick / 4.0, "%.2f") + "</text>\n";
  }
  for (int k : {1, 5, 10, 15, 20}) {
    svg += "<text x=\"" + fixed(x_of(k), "%.1f") + "\" y=\"" + fixed(kHeight - kBottom + 16, "%.0f") +
           "\" text-anchor=\"middle\" font-size=\"11\">" + std::to_string(k) + "</text>\n";
  }
  svg += "<text x=\"" + fixed((kLeft + kWidth) / 2, "%.0f") + "\" y=\"" + fixed(kHeight - 4, "%.0f") +
         "\" text-anchor=\"middle\" font-size=\"11\">k</text>\n";
  if (base != nullptr) {
    const Curve b = rank_curve(*base);
    svg += polyline(b.hit, "#1f77b4", "stroke-dasharray=\"4 3\" opacity=\"0.5\"");
    svg += polyline(b.mrr, "#d62728", "stroke-dasharray=\"4 3\" opacity=\"0.5\"");
  }
  const Curve c = rank_curve(system);
  svg += polyline(c.hit, "#1f77b4", "");
  svg += polyline(c.mrr, "#d62728", "");
  svg += "</svg>\n";
  return svg;
}

}  // namespace

std::string report_html(const EvalReport& report, const std::string& title) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                     escape(title) +
                     "</title>\n<style>\n"
                     "body { font-family: sans-serif; margin: 2em; color: #222; }\n"
                     "h1 { font-size: 1.3em; overflow-wrap: anywhere; }\n"
                     "table { border-collapse: collapse; margin-bottom: 1.5em; }\n"
                     "th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }\n"
                     "th:first-child, td:first-child { text-align: left; }\n"
                     ".charts { display: flex; flex-wrap: wrap; gap: 1.5em; }\n"
                     "figure { margin: 0; } figcaption { font-weight: bold; margin-bottom: 4px; }\n"
                     ".key { font-size: 0.9em; margin-bottom: 1em; }\n"
                     ".hit { color: #1f77b4; } .mrr { color: #d62728; }\n"
                     "</style>\n</head>\n<body>\n<h1>" +
                     escape(title) + "</h1>\n";
  if (report.results.empty()) return html + "<p>No results.</p>\n</body>\n</html>\n";
  const SystemResult& base = report.results[0];
  html += "<p>top-" + std::to_string(base.top_k) + " over " + std::to_string(base.queries.size()) +
          " queries; 95% bootstrap intervals</p>\n";
  html +=
      "<table>\n<tr><th>name</th><th>hit rate</th><th>95% CI</th><th>MRR</th><th>95% CI</th>"
      "<th>nDCG@10</th><th>recall@10</th></tr>\n";
  for (const SystemResult& r : report.results) {
    html += "<tr><td>" + escape(r.name) + "</td><td>" + fixed(r.hit_rate) + "</td><td>[" +
            fixed(r.hit_rate_ci95.lo) + ", " + fixed(r.hit_rate_ci95.hi) + "]</td><td>" + fixed(r.mrr) +
            "</td><td>[" + fixed(r.mrr_ci95.lo) + ", " + fixed(r.mrr_ci95.hi) + "]</td><td>" +
            fixed(r.ndcg_at_10) + "</td><td>" + fixed(r.recall_at_10) + "</td></tr>\n";
  }
  html += "</table>\n<h2>hit@k and MRR@k, k = 1..20</h2>\n";
  html +=
      "<p class=\"key\"><span class=\"hit\">&#9632; hit@k</span> &nbsp; <span class=\"mrr\">&#9632; MRR@k"
      "</span> &nbsp; dashed: the base</p>\n<div class=\"charts\">\n";
  for (size_t i = 0; i < report.results.size(); ++i) {
    html += "<figure>\n<figcaption>" + escape(report.results[i].name) + "</figcaption>\n" +
            chart(report.results[i], i == 0 ? nullptr : &base) + "</figure>\n";
  }
  html += "</div>\n";
  if (!report.comparisons.empty()) {
    html +=
        "<h2>Paired comparisons against the base</h2>\n<table>\n<tr><th>system</th><th>metric</th>"
        "<th>delta</th><th>p (paired permutation)</th></tr>\n";
    for (const Comparison& c : report.comparisons) {
      html += "<tr><td>" + escape(c.a) + " vs " + escape(c.b) + "</td><td>" + escape(c.metric) + "</td><td>" +
              fixed(c.delta, "%+.4f") + "</td><td>" + fixed(c.p_value) + "</td></tr>\n";
    }
    html += "</table>\n";
  }
  return html + "</body>\n</html>\n";
}

}  // namespace embedapt
