// QaDataset: questions, the chunks they are asked about, and which chunks
// answer which question: what the evaluator scores and ingest loads.
//
// Three file formats read into it:
//  - LlamaIndex's EmbeddingQAFinetuneDataset JSON (`queries`, `corpus`,
//    `relevant_docs`, `mode`), also written back byte for byte as Python's
//    `json.dump(..., indent=4)` writes it, so LlamaIndex reads ours;
//  - a BEIR folder: `corpus.jsonl` (_id, title, text), `queries.jsonl`
//    (_id, text) and `qrels/<split>.tsv` (query-id, corpus-id, score, with a
//    header line);
//  - JSONL pairs: one {"query": ..., "doc": ...} (or "positive") per line.
//
// Every reader returns only datasets that pass validate_dataset(); errors are
// Code::kInvalidArgument (Code::kIOError if a file cannot be read) with a
// message naming the file and the problem.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct TextEntry {
  std::string id;
  std::string text;
  std::string metadata;  // a corpus document's metadata, a JSON object ("": none; see Record)
};

struct Relevance {
  std::string query_id;
  std::vector<std::string> doc_ids;
};

// All three lists keep the order of the file they came from, so reading,
// splitting and writing are deterministic.
struct QaDataset {
  std::vector<TextEntry> queries;
  std::vector<TextEntry> corpus;
  std::vector<Relevance> relevant_docs;  // one entry per query, not necessarily in query order
  std::string mode = "text";             // LlamaIndex's field, kept as read
};

// The invariants: ids non-empty and unique within queries and within corpus;
// texts valid UTF-8; query texts not blank; every query has exactly one
// relevant_docs entry, a non-empty list of distinct corpus ids. `source`
// prefixes messages. A blank document is allowed, since real data has them
// (the 10-K train set has an empty chunk that two questions point to): it
// still embeds, and dataset_warnings() reports it.
Status validate_dataset(const QaDataset& dataset, const std::string& source);

// Oddities a valid dataset may have that a user should hear about.
std::vector<std::string> dataset_warnings(const QaDataset& dataset);

// LlamaIndex EmbeddingQAFinetuneDataset JSON. `mode` may be absent ("text").
Status read_llamaindex_json(const std::string& path, QaDataset* out);
Status parse_llamaindex_json(std::string_view json, const std::string& source, QaDataset* out);
std::string to_llamaindex_json(const QaDataset& dataset);
Status write_llamaindex_json(const std::string& path, const QaDataset& dataset);  // atomic

// A BEIR folder. A document's text is "title text" (BEIR's own convention);
// only queries with a positive score in the qrels are kept (as BEIR does).
Status read_beir(const std::string& dir, const std::string& split, QaDataset* out);

// JSONL pairs. Ids are derived from the texts ("q" / "d" + 16 hex digits of
// their SHA-256), so the same text gets the same id in every file; repeated
// texts collapse into one query or document. Blank lines are skipped.
Status read_jsonl_pairs(const std::string& path, QaDataset* out);

// Picks the reader from the path: a directory is a BEIR folder (split
// "test"), a name ending in ".jsonl" holds pairs, anything else is LlamaIndex JSON.
Status read_dataset(const std::string& path, QaDataset* out);

}  // namespace embedapt
