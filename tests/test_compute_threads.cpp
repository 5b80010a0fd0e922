// ComputeThreads (core/adapt/compute_threads.h): a scope caps OpenBLAS, whose
// thread count is process-wide, for every thread while it is open, overlapping
// scopes on several threads keep the smallest cap, and the count returns to
// what it was when the last one closes, in whatever order they close.
#include <ATen/Parallel.h>

#include <future>
#include <optional>
#include <thread>

#include "core/adapt/compute_threads.h"
#include "tests/support/catch.h"

using embedapt::BlasThreads;
using embedapt::ComputeThreads;

TEST_CASE("ComputeThreads caps OpenBLAS for the process while any scope is open", "[threads]") {
  const int before = BlasThreads::current();
  REQUIRE(before > 0);  // Debian's LibTorch computes in OpenBLAS: the cap must reach it
  {
    ComputeThreads one(1);
    CHECK(BlasThreads::current() == 1);
    CHECK(at::get_num_threads() == 1);  // torch's own ops run on the caller
  }
  CHECK(BlasThreads::current() == before);

  // Overlapping scopes on two threads: the smaller cap holds while both are
  // open, and the first to open closes first.
  std::promise<void> opened, close;
  std::optional<ComputeThreads> outer(std::in_place, 3);
  CHECK(BlasThreads::current() == 3);
  std::thread other([&] {
    ComputeThreads inner(1);
    opened.set_value();
    close.get_future().wait();
  });
  opened.get_future().wait();
  CHECK(BlasThreads::current() == 1);
  outer.reset();
  CHECK(BlasThreads::current() == 1);  // the other thread's cap is still open
  close.set_value();
  other.join();
  CHECK(BlasThreads::current() == before);
}

TEST_CASE("BlasThreads caps OpenBLAS alone, leaving the caller's torch and OpenMP threads", "[threads]") {
  const int before = BlasThreads::current(), torch = at::get_num_threads();
  {
    BlasThreads one(1);
    CHECK(BlasThreads::current() == 1);
    CHECK(at::get_num_threads() == torch);
  }
  CHECK(BlasThreads::current() == before);
}
