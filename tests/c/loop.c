/* The learning loop through the C ABI, from a program compiled as C99: a
 * store of documents, searches logged with the results users chose, a
 * retrain that activates an adapter, and searches with it that rank better.
 * Also the loop's error codes: NULL handles and out-of-range indexes.
 *
 * The task is synthetic and has a known answer: each query is its document
 * plus noise, seen through a fixed distortion (a mismatched query encoder),
 * so the base ranks poorly and an adapter can undo the distortion.
 *
 * Usage: c_loop STORE_DIR (created; must not exist). Exit 0 if every check held. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedapt/embedapt.h"

enum { kDim = 16, kDocs = 120, kPerDoc = 3, kQueries = kDocs * kPerDoc };

static float docs[kDocs][kDim];
static float queries[kQueries][kDim];
static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

/* Stops the program if a call that the rest depends on failed. */
static void require_ok(embedapt_code code, char* error, const char* what) {
  if (code == EMBEDAPT_OK) return;
  fprintf(stderr, "%s failed (%d): %s\n", what, (int)code, error ? error : "(no message)");
  embedapt_free(error);
  exit(1);
}

/* xorshift64* and Box-Muller: a seeded normal distribution. */
static uint64_t rng_state = 11;
static double uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return ((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static float normal(void) {
  double u = uniform(), v = uniform();
  return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

static void normalise(float* v) {
  double s = 0;
  int i;
  for (i = 0; i < kDim; ++i) s += (double)v[i] * v[i];
  for (i = 0; i < kDim; ++i) v[i] = (float)(v[i] / sqrt(s));
}

static void make_task(void) {
  static float a[kDim][kDim];
  int d, r, c, k;
  for (d = 0; d < kDocs; ++d) {
    for (c = 0; c < kDim; ++c) docs[d][c] = normal();
    normalise(docs[d]);
  }
  for (r = 0; r < kDim; ++r)
    for (c = 0; c < kDim; ++c) a[r][c] = (r == c ? 1.0f : 0.0f) + 0.45f * normal();
  for (d = 0; d < kDocs; ++d) {
    for (k = 0; k < kPerDoc; ++k) {
      float clean[kDim];
      float* seen = queries[d * kPerDoc + k];
      for (c = 0; c < kDim; ++c) clean[c] = docs[d][c] + 0.35f * normal();
      for (r = 0; r < kDim; ++r) {
        seen[r] = 0;
        for (c = 0; c < kDim; ++c) seen[r] += a[r][c] * clean[c];
      }
    }
  }
}

static void doc_id(int d, char* out) { sprintf(out, "doc%d", d); }

/* Share of queries whose own document ranks first. */
static double hit_at_1(embedapt_store* store) {
  int q, hits = 0;
  for (q = 0; q < kQueries; ++q) {
    embedapt_results* results = NULL;
    char* error = NULL;
    char want[32];
    require_ok(embedapt_search(store, queries[q], kDim, 1, &results, &error), error, "embedapt_search");
    doc_id(q / kPerDoc, want);
    if (embedapt_results_count(results) == 1 && strcmp(embedapt_results_id(results, 0), want) == 0) ++hits;
    embedapt_results_free(results);
  }
  return (double)hits / kQueries;
}

int main(int argc, char** argv) {
  embedapt_store* store = NULL;
  char* error = NULL;
  int d, q;
  double before, after;
  embedapt_retrain_options options;
  embedapt_retrain_report report;
  embedapt_adapters* adapters = NULL;
  embedapt_adapter_info info;
  embedapt_stats stats;

  if (argc != 2) {
    fprintf(stderr, "usage: %s STORE_DIR\n", argv[0]);
    return 2;
  }
  make_task();

  /* 1. Ingest. */
  require_ok(embedapt_open(argv[1], kDim, "cosine", "Flat", &store, &error), error, "embedapt_open");
  for (d = 0; d < kDocs; ++d) {
    char id[32];
    doc_id(d, id);
    require_ok(embedapt_upsert(store, id, docs[d], kDim, NULL, 0, &error), error, "embedapt_upsert");
  }

  /* 2. Search, log what was shown and what the user chose. */
  for (q = 0; q < kQueries; ++q) {
    embedapt_results* results = NULL;
    const char* shown[5];
    size_t i, n;
    uint64_t query_id = 0;
    char chosen[32];
    require_ok(embedapt_search(store, queries[q], kDim, 5, &results, &error), error, "embedapt_search");
    n = embedapt_results_count(results);
    for (i = 0; i < n; ++i) shown[i] = embedapt_results_id(results, i);
    require_ok(embedapt_log_query(store, queries[q], kDim, shown, n, &query_id, &error), error,
               "embedapt_log_query");
    embedapt_results_free(results);
    doc_id(q / kPerDoc, chosen);
    require_ok(embedapt_log_hit(store, query_id, chosen, &error), error, "embedapt_log_hit");
  }
  before = hit_at_1(store);

  /* 3. Retrain: activated if better than the base. */
  embedapt_retrain_options_init(&options);
  options.epochs = 12;
  options.lr = 0.01;
  require_ok(embedapt_retrain(store, &options, &report, &error), error, "embedapt_retrain");
  printf(
      "retrain: decision %d, version %llu, hit@5 %.3f -> %.3f, gain %.4f [%.4f, %.4f], log rank %.4f [%.4f, "
      "%.4f], z %.2f, %d epochs, %.2f s\n",
      (int)report.decision, (unsigned long long)report.version, report.base_hit, report.adapter_hit,
      report.gain, report.gain_low, report.gain_high, report.log_rank_gain, report.log_rank_low,
      report.log_rank_high, report.z, report.epochs_run, report.seconds);
  CHECK(report.decision == EMBEDAPT_ACTIVATED);
  CHECK(report.version == 1);
  CHECK(report.queries == kQueries);
  CHECK(report.adapter_hit > report.base_hit);
  CHECK(report.gain > 0);
  CHECK(report.z >= report.min_z);
  CHECK(report.log_rank_low > 0 && report.log_rank_low <= report.log_rank_gain);

  /* 4. Search with the adapter. */
  after = hit_at_1(store);
  printf("hit@1: %.3f without the adapter, %.3f with it\n", before, after);
  CHECK(after > before);

  /* Listing, stats, rollback and activation. */
  require_ok(embedapt_list_adapters(store, &adapters, &error), error, "embedapt_list_adapters");
  CHECK(embedapt_adapters_count(adapters) == 1);
  require_ok(embedapt_adapters_get(adapters, 0, &info, &error), error, "embedapt_adapters_get");
  CHECK(info.version == 1 && info.active == 1 && info.parent == 0);
  CHECK(strstr(info.config_json, "\"linear\"") != NULL);
  CHECK(strstr(info.metrics_json, "\"improved\":true") != NULL);
  CHECK(embedapt_adapters_get(adapters, 1, &info, &error) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(error != NULL && strstr(error, "index 1") != NULL);
  embedapt_free(error);
  error = NULL;
  embedapt_adapters_free(adapters);

  require_ok(embedapt_get_stats(store, &stats, &error), error, "embedapt_get_stats");
  CHECK(stats.count == kDocs && stats.dim == kDim);
  CHECK(stats.active_adapter == 1 && stats.adapter_versions == 1);
  CHECK(stats.logged_queries == kQueries && stats.logged_hits == kQueries);

  require_ok(embedapt_rollback(store, &error), error, "embedapt_rollback");
  CHECK(hit_at_1(store) == before);
  CHECK(embedapt_rollback(store, NULL) == EMBEDAPT_FAILED_PRECONDITION);
  CHECK(embedapt_activate(store, 7, NULL) == EMBEDAPT_NOT_FOUND);
  require_ok(embedapt_activate(store, 1, &error), error, "embedapt_activate");
  CHECK(hit_at_1(store) == after);

  /* Errors, not crashes: NULL handles, bad indexes, bad options. */
  CHECK(embedapt_log_hit(store, 999999, "doc1", NULL) == EMBEDAPT_NOT_FOUND);
  CHECK(embedapt_log_query(NULL, queries[0], kDim, NULL, 0, &info.version, NULL) ==
        EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_log_query(store, queries[0], kDim, NULL, 3, &info.version, NULL) ==
        EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_log_hit(NULL, 1, "doc1", NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_retrain(NULL, NULL, NULL, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_activate(NULL, 1, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_rollback(NULL, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_list_adapters(NULL, &adapters, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_adapters_get(NULL, 0, &info, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_adapters_count(NULL) == 0);
  CHECK(embedapt_get_stats(NULL, &stats, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_search(NULL, queries[0], kDim, 1, NULL, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_upsert(NULL, "x", docs[0], kDim, NULL, 0, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_flush(NULL, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(embedapt_dim(NULL) == 0 && embedapt_count(NULL) == 0);
  CHECK(embedapt_results_count(NULL) == 0 && embedapt_results_id(NULL, 0) == NULL);
  options.loss = "hinge";
  CHECK(embedapt_retrain(store, &options, NULL, &error) == EMBEDAPT_INVALID_ARGUMENT);
  CHECK(error != NULL && strstr(error, "hinge") != NULL);
  embedapt_free(error);
  error = NULL;
  options.loss = NULL;
  options.activate = (embedapt_activation)9;
  CHECK(embedapt_retrain(store, &options, NULL, NULL) == EMBEDAPT_INVALID_ARGUMENT);
  {
    embedapt_results* results = NULL;
    size_t len = 1;
    require_ok(embedapt_search(store, queries[0], kDim, 2, &results, &error), error, "embedapt_search");
    CHECK(embedapt_results_id(results, 2) == NULL);
    CHECK(isnan(embedapt_results_score(results, 2)));
    CHECK(embedapt_results_payload(results, 2, &len) == NULL && len == 0);
    embedapt_results_free(results);
  }

  embedapt_close(store);
  if (failures > 0) fprintf(stderr, "%d checks failed\n", failures);
  return failures == 0 ? 0 : 1;
}
