#include "core/common/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace embedapt {

namespace {

constexpr int kBarWidth = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

Progress::Progress(std::string label, size_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (done_ == 0 && !drawn_) return;
  draw(std::chrono::steady_clock::now());
  std::fputc('\n', stderr);
}

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::add(size_t n) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < kRedrawInterval) return;
  draw(now);
}

void Progress::draw(std::chrono::steady_clock::time_point now) {
  last_draw_ = now;
  drawn_ = true;
  double fraction = total_ == 0 ? 1.0 : std::min(1.0, static_cast<double>(done_) / total_);
  int filled = static_cast<int>(fraction * kBarWidth);
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  std::string bar(filled, '#');
  bar.resize(kBarWidth, ' ');
  std::string eta = "";
  if (rate > 0 && done_ < total_)
    eta = "  ETA " + std::to_string(static_cast<long>((total_ - done_) / rate)) + "s";
  std::fprintf(stderr, "\r%s  %zu/%zu  %3d%% [%s] %.0f/s%s\033[K", label_.c_str(), done_, total_,
               static_cast<int>(fraction * 100), bar.c_str(), rate, eta.c_str());
  std::fflush(stderr);
}

}  // namespace embedapt
