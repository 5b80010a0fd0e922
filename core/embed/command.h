// "command:CMD": an embedding model in any language, run as a subprocess.
//
// The protocol, one JSON object per line over the child's stdin and stdout:
//
//   request  (to the child):   {"side": "query" | "document", "texts": ["...", ...]}
//   response (from the child): {"embeddings": [[f, f, ...], ...]}   one row per text, in order
//                          or  {"error": "what went wrong"}
//
// The child is started with `sh -c CMD` on first use, in a process group of
// its own, and kept for the embedder's lifetime; its stderr is passed through
// for diagnostics. Every row must have the same length. When the child exits,
// writes something that is not such a line, or answers with the wrong shape,
// the call fails naming CMD and the problem, the child is ended, and the next
// call starts a fresh one. A child that takes longer than
// read_timeout_seconds to take a request and answer it is taken to be hung:
// the call fails with kIOError naming CMD and the timeout, and the child is
// killed at once. Closing the embedder closes the child's stdin (its cue to
// exit) and reaps it, killing it if it lingers. Ending the child kills its
// whole process group: what CMD started (sh's own child, a program it put in
// the background) does not outlive it, unless it left the group.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "embedapt/embedder.h"
#include "embedapt/status.h"

namespace embedapt {

struct CommandOptions {
  std::string command;  // run with sh -c
  int known_dim = 0;    // > 0: the dimension is known (e.g. from the cache), skip the probe
  int batch_size = 64;  // texts per request line
  // Longest wait for one request line to be sent and its reply read; <= 0
  // waits forever. A request of batch_size texts must fit in it.
  double read_timeout_seconds = 300;
  // A longer reply line fails the request (kCorruption) instead of filling
  // memory.
  size_t max_reply_bytes = size_t{64} << 20;
  bool show_progress = false;
};

// "command:" + CMD.
std::string command_identity(const std::string& command);

// Opens the embedder. Unless options.known_dim says it, the dimension is
// learned by embedding one short text, so a broken command fails here.
Status open_command_embedder(const CommandOptions& options, std::unique_ptr<Embedder>* out);

// Reads one reply line for `n` texts of dimension `dim` (0: the first row
// decides) and appends the n rows to *out. kIOError for an error the command
// reported, kCorruption for anything malformed (JSON nested deeper than
// kMaxJsonDepth included); *out is unchanged then. Messages quote at most a
// few hundred bytes of the child's line or error, on one line.
Status parse_command_reply(const std::string& line, size_t n, size_t dim, std::vector<float>* out);

}  // namespace embedapt
