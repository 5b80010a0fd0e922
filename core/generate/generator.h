// Asking an LLM for questions about each chunk: bounded concurrency, a
// journal that makes an interrupted run resumable, and an account of tokens
// and failures.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/generate/chat.h"
#include "core/generate/chunker.h"
#include "core/generate/questions.h"
#include "embedapt/status.h"

namespace embedapt {

struct GenerateOptions {
  ChatOptions chat;
  std::string prompt = kDefaultQuestionPrompt;  // with {chunk} and {n}
  int questions_per_chunk = 2;
  int concurrency = 4;    // requests in flight at once
  size_t max_chunks = 0;  // ask about the first max_chunks chunks only; 0 = all
  // Called after each chunk is settled (answered, reused or failed) with the
  // count so far and the total; calls are serialised.
  std::function<void(size_t done, size_t total)> progress;
};

struct GenerateResult {
  std::map<std::string, std::vector<std::string>> questions;  // chunk id -> questions, answered chunks only
  size_t asked = 0;              // chunks this run sent to the LLM and got an answer for
  size_t from_journal = 0;       // chunks answered by an earlier run
  size_t short_answers = 0;      // answered chunks with fewer clean questions than asked for
  std::vector<Status> failures;  // one per chunk that still failed after retries, naming it
  ChatUsage usage;               // tokens this run paid for
  ChatUsage journal_usage;       // tokens earlier runs paid for
};

// Asks for questions_per_chunk questions about each chunk (the first
// max_chunks), recording each answer in the journal at `journal_path` before
// counting it. Chunks the journal already answers are not asked again; the
// journal is tied to the chat endpoint, model, temperature, prompt, question
// count and the full chunk list (ids and texts), and refuses other ones.
//
// A chunk that fails after the HTTP layer's retries is recorded in
// result->failures and the run goes on; a client error (InvalidArgument:
// bad key, unknown model) stops the run from asking further chunks, since
// every request would fail alike. Returns non-ok only when the run could not
// start (bad options, journal errors) or the journal could not be written.
Status generate_questions(const std::vector<Chunk>& chunks, const GenerateOptions& options,
                          const std::string& journal_path, GenerateResult* result);

}  // namespace embedapt
