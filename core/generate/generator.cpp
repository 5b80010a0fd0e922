#include "core/generate/generator.h"

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/common/http.h"
#include "core/common/sha256.h"
#include "core/generate/journal.h"

namespace embedapt {

namespace {

using nlohmann::json;

std::string sha256_hex(const std::string& data) { return hex(sha256(data)); }

// Everything that shapes the answers, as the journal records it. The
// concurrency, the chunk limit and prices do not, so they may change between
// a run and its resumption. The key is not part of it.
std::string journal_arguments(const std::vector<Chunk>& chunks, const GenerateOptions& options) {
  // Length-prefixed fields, so that where one ends is part of the hash.
  std::string fields;
  for (const Chunk& chunk : chunks) {
    for (const std::string* field : {&chunk.id, &chunk.text}) {
      fields += std::to_string(field->size()) + ":" + *field;
    }
  }
  std::string base = options.chat.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  json arguments = {{"llm_base_url", printable_url(base)},  // the journal is a file: no password in it
                    {"llm_model", options.chat.model},
                    {"temperature", options.chat.temperature},
                    {"questions_per_chunk", options.questions_per_chunk},
                    {"prompt_sha256", sha256_hex(options.prompt)},
                    {"chunks", chunks.size()},
                    {"chunks_sha256", sha256_hex(fields)}};
  return arguments.dump();
}

std::string describe(const Chunk& chunk) {
  return "chunk " + chunk.id + " (" + chunk.document + ", page " + std::to_string(chunk.page) + ")";
}

}  // namespace

Status generate_questions(const std::vector<Chunk>& chunks, const GenerateOptions& options,
                          const std::string& journal_path, GenerateResult* result) {
  if (options.questions_per_chunk < 1) {
    return Status::InvalidArgument("questions per chunk must be at least 1");
  }
  if (options.concurrency < 1) return Status::InvalidArgument("concurrency must be at least 1");
  if (options.chat.base_url.empty()) return Status::InvalidArgument("no LLM base URL given");
  if (options.chat.model.empty()) return Status::InvalidArgument("no LLM model given");
  EMBEDAPT_RETURN_IF_ERROR(validate_prompt(options.prompt));
  std::set<std::string> ids;
  for (const Chunk& chunk : chunks) {
    if (!ids.insert(chunk.id).second) return Status::InvalidArgument("two chunks share the id " + chunk.id);
  }

  const auto questions_per_chunk = static_cast<size_t>(options.questions_per_chunk);
  *result = GenerateResult{};
  std::vector<JournalEntry> entries;
  std::unique_ptr<Journal> journal;
  EMBEDAPT_RETURN_IF_ERROR(
      Journal::open(journal_path, journal_arguments(chunks, options), &entries, &journal));
  std::map<std::string, const JournalEntry*> answered;
  for (const JournalEntry& entry : entries) answered[entry.chunk_id] = &entry;

  size_t total = options.max_chunks == 0 ? chunks.size() : std::min(options.max_chunks, chunks.size());
  std::vector<const Chunk*> pending;
  for (size_t i = 0; i < total; ++i) {
    auto it = answered.find(chunks[i].id);
    if (it == answered.end()) {
      pending.push_back(&chunks[i]);
      continue;
    }
    std::vector<std::string> questions = parse_questions(it->second->reply, questions_per_chunk);
    if (questions.size() < questions_per_chunk) ++result->short_answers;
    result->questions[chunks[i].id] = std::move(questions);
    result->journal_usage.input_tokens += it->second->input_tokens;
    result->journal_usage.output_tokens += it->second->output_tokens;
    ++result->from_journal;
  }

  std::mutex mu;  // guards *result, settled, journal_status
  size_t settled = result->from_journal;
  Status journal_status;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  if (options.progress) options.progress(settled, total);

  auto work = [&] {
    for (size_t i = next++; i < pending.size() && !stop; i = next++) {
      const Chunk& chunk = *pending[i];
      std::string reply;
      ChatUsage usage;
      Status s =
          chat_complete(options.chat, render_prompt(options.prompt, chunk.text, options.questions_per_chunk),
                        &reply, &usage);
      if (s.ok()) {
        // Recorded before it counts: a kill after this line loses nothing.
        Status written = journal->append({chunk.id, reply, usage.input_tokens, usage.output_tokens});
        if (!written.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          journal_status = written;
          stop = true;
          return;
        }
      } else if (s.code() == Code::kInvalidArgument) {
        stop = true;
      }
      std::lock_guard<std::mutex> lock(mu);
      if (s.ok()) {
        ++result->asked;
        result->usage.input_tokens += usage.input_tokens;
        result->usage.output_tokens += usage.output_tokens;
        std::vector<std::string> questions = parse_questions(reply, questions_per_chunk);
        if (questions.size() < questions_per_chunk) ++result->short_answers;
        result->questions[chunk.id] = std::move(questions);
      } else {
        result->failures.push_back(s.WithContext(describe(chunk)));
      }
      ++settled;
      if (options.progress) options.progress(settled, total);
    }
  };
  std::vector<std::thread> workers;
  size_t thread_count = std::min(pending.size(), static_cast<size_t>(options.concurrency));
  for (size_t t = 0; t < thread_count; ++t) workers.emplace_back(work);
  for (std::thread& worker : workers) worker.join();
  return journal_status;
}

}  // namespace embedapt
