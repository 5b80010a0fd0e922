// The journal of a generate run: every answer the LLM gave, appended and
// fsynced as it arrives, so a run killed at any point and restarted with the
// same arguments asks only for the chunks it has no answer for.
//
// Format: JSON lines. The first holds the run's arguments and their
// fingerprint; each other holds one chunk's raw reply and token counts. A
// torn last line (the process died mid-write) is cut off when reopened.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct JournalEntry {
  std::string chunk_id;
  std::string reply;         // the LLM's raw reply: what was paid for, parsed again on every run
  int64_t input_tokens = 0;  // as the API's usage reported them
  int64_t output_tokens = 0;
};

class Journal {
 public:
  // Opens the journal at `path`, creating it with `arguments` (a canonical
  // JSON object of everything that shapes the answers; never secrets) when it
  // does not exist. An existing journal must have been written with the same
  // arguments: FailedPrecondition otherwise, saying how they differ. Its
  // entries are returned in *entries; Corruption names a damaged line.
  static Status open(const std::string& path, const std::string& arguments,
                     std::vector<JournalEntry>* entries, std::unique_ptr<Journal>* out);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends one entry and fsyncs it before returning. Thread-safe.
  Status append(const JournalEntry& entry);

 private:
  Journal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  std::mutex mu_;
  const int fd_;
};

}  // namespace embedapt
