// A one-line progress bar on stderr for runs that take seconds:
//
//   embedding  1536/5000  30% [#########                     ] 412/s  ETA 8s
//
// Callers enable it when the user asked for it or stderr_is_terminal(), so
// logs and pipes get no carriage-return noise. Safe to advance from several
// threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace embedapt {

class Progress {
 public:
  // `total` is the work expected; a disabled Progress draws nothing.
  Progress(std::string label, size_t total, bool enabled);
  ~Progress();  // draws the final state and ends the line, if anything was drawn

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  static bool stderr_is_terminal();

  // Records `n` more units done; redraws at most ten times a second.
  void add(size_t n);

 private:
  void draw(std::chrono::steady_clock::time_point now);  // requires mu_

  const std::string label_;
  const size_t total_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  size_t done_ = 0;  // guarded by mu_
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace embedapt
