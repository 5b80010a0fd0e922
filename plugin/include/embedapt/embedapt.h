/* embedapt.h: the C ABI of the embedapt store, for Python, Go, Rust and others.
 *
 * Handles are opaque. Every fallible call returns an embedapt_code; on failure,
 * if `error` is not NULL, *error receives a malloc'd message naming the input
 * and the problem, which the caller frees with embedapt_free(). Strings
 * (ids, paths, metric and index names) are NUL-terminated UTF-8; payloads are
 * byte buffers with a length.
 *
 * No C++ exception crosses this interface: an unexpected one inside a call
 * (from a registered adapter, say, or out of memory) becomes EMBEDAPT_INTERNAL
 * with its message. A NULL handle or an index past the end is an error code
 * (EMBEDAPT_INVALID_ARGUMENT) for calls that return one; the accessors that
 * return a value return 0, NULL or NaN instead, as each says.
 *
 * Thread safety is that of the C++ Store (embedapt/store.h): one store handle
 * may be used from many threads; a results or adapters handle belongs to one
 * thread.
 *
 * The learning loop (see embedapt/learn.h): log what users asked
 * (embedapt_log_query) and chose (embedapt_log_hit), then embedapt_retrain
 * stores a new adapter version and activates it per a policy; searches apply
 * the active version.
 */
#ifndef EMBEDAPT_EMBEDAPT_H_
#define EMBEDAPT_EMBEDAPT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Mirrors embedapt::Code. */
typedef enum {
  EMBEDAPT_OK = 0,
  EMBEDAPT_INVALID_ARGUMENT = 1,
  EMBEDAPT_NOT_FOUND = 2,
  EMBEDAPT_CORRUPTION = 3,
  EMBEDAPT_IO_ERROR = 4,
  EMBEDAPT_BUSY = 5,
  EMBEDAPT_NOT_SUPPORTED = 6,
  EMBEDAPT_FAILED_PRECONDITION = 7,
  EMBEDAPT_UNAVAILABLE = 8,
  EMBEDAPT_INTERNAL = 9
} embedapt_code;

typedef struct embedapt_store embedapt_store;
typedef struct embedapt_results embedapt_results;

/* Opens or creates the store at `path`. For an existing store, dim 0 and
 * NULL metric / index_spec mean "as stored". metric: "cosine", "ip" or "l2";
 * index_spec: a FAISS factory string such as "Flat" or "HNSW32". */
embedapt_code embedapt_open(const char* path, int dim, const char* metric, const char* index_spec,
                            embedapt_store** store, char** error);

/* Flags for embedapt_open_flags, or'ed together. */
/* Lets the store load TorchScript adapter versions, which are code (see
 * embedapt::Options::trust_code); without it, opening a store whose active
 * adapter is one fails with EMBEDAPT_FAILED_PRECONDITION. */
#define EMBEDAPT_OPEN_TRUST_CODE 1u

/* embedapt_open with `flags` (0: the same as embedapt_open). Unknown flags
 * are refused with EMBEDAPT_INVALID_ARGUMENT. */
embedapt_code embedapt_open_flags(const char* path, int dim, const char* metric, const char* index_spec,
                                  uint32_t flags, embedapt_store** store, char** error);
/* Persists a snapshot and closes; NULL is ignored. The handle is freed, as
 * free() frees memory: using or closing it again is undefined (set it to
 * NULL), and so is closing it while another thread is in a call on it. */
void embedapt_close(embedapt_store* store);

/* The store's dimension and record count; 0 for a NULL handle. */
int embedapt_dim(const embedapt_store* store);
uint64_t embedapt_count(const embedapt_store* store);

embedapt_code embedapt_upsert(embedapt_store* store, const char* id, const float* vector, size_t dim,
                              const void* payload, size_t payload_len, char** error);
/* embedapt_upsert with metadata, a JSON object of strings, numbers, bools
 * and lists of strings (see embedapt::Record; NULL or "": none). */
embedapt_code embedapt_upsert_metadata(embedapt_store* store, const char* id, const float* vector, size_t dim,
                                       const void* payload, size_t payload_len, const char* metadata,
                                       char** error);
/* EMBEDAPT_NOT_FOUND if `id` is not stored. */
embedapt_code embedapt_remove(embedapt_store* store, const char* id, char** error);
/* Removes every record whose metadata matches the JSON `filter`, atomically;
 * *removed (if not NULL) gets how many. */
embedapt_code embedapt_remove_matching(embedapt_store* store, const char* filter, uint64_t* removed,
                                       char** error);
/* A malloc'd copy of the metadata of `id` ("" if none; free with
 * embedapt_free). */
embedapt_code embedapt_get_metadata(const embedapt_store* store, const char* id, char** metadata,
                                    char** error);
/* Copies the stored vector into `vector` (room for `dim` floats) and, if
 * `payload` is not NULL, a malloc'd copy of the payload (free with
 * embedapt_free) into *payload and its length into *payload_len. */
embedapt_code embedapt_get(const embedapt_store* store, const char* id, float* vector, size_t dim,
                           void** payload, size_t* payload_len, char** error);
/* Makes every write so far durable and persists an index snapshot. */
embedapt_code embedapt_flush(embedapt_store* store, char** error);

/* The k nearest records of `query`, best first; free with
 * embedapt_results_free(). */
embedapt_code embedapt_search(const embedapt_store* store, const float* query, size_t dim, int k,
                              embedapt_results** results, char** error);
/* embedapt_search among the records whose metadata matches `filter`, a JSON
 * filter (see embedapt::Filter in embedapt/store.h; NULL: every record).
 * A malformed filter is EMBEDAPT_INVALID_ARGUMENT, never an empty result. */
embedapt_code embedapt_search_filtered(const embedapt_store* store, const float* query, size_t dim, int k,
                                       const char* filter, embedapt_results** results, char** error);
/* How embedapt_search_with searches (embedapt::SearchOptions in
 * embedapt/store.h); fill with embedapt_search_options_init first, then set
 * what differs. */
typedef struct {
  int k;              /* hits wanted, positive; default 10 */
  const char* filter; /* a JSON filter as for embedapt_search_filtered; NULL: every record */
  int ef_search;      /* HNSW's candidate list; 0: the index's default */
  int nprobe;         /* IVF's lists probed; 0: the index's default */
  /* Non-zero: hits carry id and score only (payload NULL with length 0,
   * metadata ""), named from ids the store keeps in memory instead of read
   * from RocksDB: the same hits, faster. */
  int ids_only;
} embedapt_search_options;

/* The defaults: k 10, every record, the index's knobs, hits with records. */
void embedapt_search_options_init(embedapt_search_options* options);

/* embedapt_search as `options` say (NULL: the defaults). A knob the store's
 * index has not (ef_search on anything but HNSW, nprobe on anything but IVF)
 * or out of its range, k below 1 and a malformed filter are
 * EMBEDAPT_INVALID_ARGUMENT, the message naming the setting. */
embedapt_code embedapt_search_with(const embedapt_store* store, const float* query, size_t dim,
                                   const embedapt_search_options* options, embedapt_results** results,
                                   char** error);
/* 0 for NULL. */
size_t embedapt_results_count(const embedapt_results* results);
/* The i-th hit; pointers stay valid until embedapt_results_free(). A NULL
 * handle or i past the end gives NULL (payload: NULL and *len 0) and a NaN
 * score; so do the metadata of such an i. An empty payload is NULL, *len 0. */
const char* embedapt_results_id(const embedapt_results* results, size_t i);
float embedapt_results_score(const embedapt_results* results, size_t i);
const void* embedapt_results_payload(const embedapt_results* results, size_t i, size_t* len);
/* The i-th hit's metadata, a JSON object ("" if it has none). */
const char* embedapt_results_metadata(const embedapt_results* results, size_t i);
void embedapt_results_free(embedapt_results* results);

/* ---- The learning loop ---- */

/* Logs a query the app ran: its raw vector and the ids of the `n_results`
 * results it showed (result_ids may be NULL when n_results is 0). The same
 * vector logged again gets the same *query_id. */
embedapt_code embedapt_log_query(embedapt_store* store, const float* query, size_t dim,
                                 const char* const* result_ids, size_t n_results, uint64_t* query_id,
                                 char** error);
/* Logs that the user chose document `doc_id` for query `query_id`
 * (EMBEDAPT_NOT_FOUND if no such query was logged). Logging a pair twice is a
 * no-op. */
embedapt_code embedapt_log_hit(embedapt_store* store, uint64_t query_id, const char* doc_id, char** error);

/* What embedapt_retrain does with the version it stores. */
typedef enum {
  EMBEDAPT_ACTIVATE_NEVER = 0,
  EMBEDAPT_ACTIVATE_IF_BETTER = 1, /* if it beats the active version on the logged queries */
  EMBEDAPT_ACTIVATE_ALWAYS = 2
} embedapt_activation;

/* embedapt::RetrainOptions; fill with embedapt_retrain_options_init first.
 * Numbers left 0 (and NULL strings) mean the trainer's defaults, but the
 * seed: 0 is a seed like any other. */
typedef struct {
  const char* kind; /* "linear" or "two-layer" */
  int both_sides;   /* 0: the adapter transforms queries; 1: queries and documents */
  int hidden;       /* two-layer only */
  int epochs;
  double lr;
  const char* loss; /* "corpus", "in-batch" or "hard" */
  int folds;        /* cross-validation folds over the logged queries */
  uint64_t seed;
  int threads;
  embedapt_activation activate;
} embedapt_retrain_options;

/* The defaults: linear, queries only, seed 42, one thread, activate if better. */
void embedapt_retrain_options_init(embedapt_retrain_options* options);

typedef enum {
  EMBEDAPT_NO_GAIN = 0,    /* nothing beat the base clearly: nothing stored */
  EMBEDAPT_STORED = 1,     /* stored, not activated (EMBEDAPT_ACTIVATE_NEVER) */
  EMBEDAPT_NOT_BETTER = 2, /* stored, not activated: the active version is as good */
  EMBEDAPT_ACTIVATED = 3
} embedapt_decision;

/* The key numbers of embedapt::RetrainReport (scores are cross-validated
 * hit@5 / MRR@5 over the logged queries; gain is the estimated hit@5 gain over
 * the base with its 95% interval; the decision tests the log-rank gain
 * log_rank_gain (per query, log base rank - log adapter rank; with its 95%
 * interval), which ships at z >= min_z if neither gain nor the
 * reciprocal-rank gain rr_gain is negative). */
typedef struct {
  embedapt_decision decision;
  uint64_t version; /* the stored version, 0 if none */
  uint64_t queries;
  double base_hit, base_mrr;
  double adapter_hit, adapter_mrr;
  double gain, gain_low, gain_high;
  double rr_gain;
  double log_rank_gain, log_rank_low, log_rank_high;
  double z, min_z;
  int epochs_run;
  double seconds; /* reading, training and storing */
} embedapt_retrain_report;

/* Trains an adapter from the store's query log, stores it as a version and
 * activates it per options->activate (NULL options: the defaults). A log
 * without signal is not an error: EMBEDAPT_OK with EMBEDAPT_NO_GAIN. `report`
 * may be NULL. */
embedapt_code embedapt_retrain(embedapt_store* store, const embedapt_retrain_options* options,
                               embedapt_retrain_report* report, char** error);
/* Makes `version` the active adapter (0: none); atomic for concurrent searches. */
embedapt_code embedapt_activate(embedapt_store* store, uint64_t version, char** error);
/* Re-activates the version active before the current one. */
embedapt_code embedapt_rollback(embedapt_store* store, char** error);

/* The stored adapter versions, oldest first; free with embedapt_adapters_free(). */
typedef struct embedapt_adapters embedapt_adapters;
typedef struct {
  uint64_t version;
  uint64_t parent; /* the version active when it was trained (0: none) */
  int64_t created_unix;
  int active;               /* 1 for the active version */
  const char* config_json;  /* valid until embedapt_adapters_free() */
  const char* metrics_json; /* likewise */
} embedapt_adapter_info;
embedapt_code embedapt_list_adapters(const embedapt_store* store, embedapt_adapters** adapters, char** error);
size_t embedapt_adapters_count(const embedapt_adapters* adapters); /* 0 for NULL */
embedapt_code embedapt_adapters_get(const embedapt_adapters* adapters, size_t i, embedapt_adapter_info* out,
                                    char** error);
void embedapt_adapters_free(embedapt_adapters* adapters);

typedef struct {
  uint64_t count;
  int dim;
  uint64_t active_adapter; /* 0: none */
  uint64_t adapter_versions;
  uint64_t logged_queries;
  uint64_t logged_hits;
  uint64_t disk_bytes;
} embedapt_stats;
embedapt_code embedapt_get_stats(const embedapt_store* store, embedapt_stats* out, char** error);

/* Frees a message or payload this library allocated; NULL is ignored. */
void embedapt_free(void* p);

#ifdef __cplusplus
}
#endif

#endif /* EMBEDAPT_EMBEDAPT_H_ */
