/* embedapt.h: the C ABI of the embedapt store, for Python, Go, Rust and others.
 *
 * Handles are opaque. Every fallible call returns an embedapt_code; on failure,
 * if `error` is not NULL, *error receives a malloc'd message naming the input
 * and the problem, which the caller frees with embedapt_free(). Strings
 * (ids, paths, metric and index names) are NUL-terminated UTF-8; payloads are
 * byte buffers with a length.
 *
 * Thread safety is that of the C++ Store (embedapt/store.h): one store handle
 * may be used from many threads; a results handle belongs to one thread.
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
/* Persists a snapshot and closes; NULL is ignored. */
void embedapt_close(embedapt_store* store);

int embedapt_dim(const embedapt_store* store);
uint64_t embedapt_count(const embedapt_store* store);

embedapt_code embedapt_upsert(embedapt_store* store, const char* id, const float* vector, size_t dim,
                              const void* payload, size_t payload_len, char** error);
/* EMBEDAPT_NOT_FOUND if `id` is not stored. */
embedapt_code embedapt_remove(embedapt_store* store, const char* id, char** error);
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
size_t embedapt_results_count(const embedapt_results* results);
/* The i-th hit; pointers stay valid until embedapt_results_free(). */
const char* embedapt_results_id(const embedapt_results* results, size_t i);
float embedapt_results_score(const embedapt_results* results, size_t i);
const void* embedapt_results_payload(const embedapt_results* results, size_t i, size_t* len);
void embedapt_results_free(embedapt_results* results);

/* Frees a message or payload this library allocated; NULL is ignored. */
void embedapt_free(void* p);

#ifdef __cplusplus
}
#endif

#endif /* EMBEDAPT_EMBEDAPT_H_ */
