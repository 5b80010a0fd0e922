// ComputeThreads: how many CPU threads LibTorch work uses during a scope, one
// policy for the encoder and the trainer; BlasThreads: its OpenBLAS half alone;
// KeepOpenMpThreads: the caller's OpenMP count kept through LibTorch work.
//
// Debian's LibTorch does its matrix products in OpenBLAS (the pthread build,
// libopenblas.so.0; FAISS reaches the same library through libblas.so.3),
// whose thread pool at::set_num_threads does not size: a trainer asking for
// one thread still ran its products on every core. Sizing both to `threads`
// nests them (an OpenMP-parallel batched product calling threaded BLAS) and
// oversubscribes the CPU: measured on 2 cores, 1 torch thread + 2 BLAS threads
// used half the CPU time of 2 + 2. So with OpenBLAS the products get the
// threads and torch's element-wise ops run on the caller; with any other BLAS
// torch gets them.
//
// Torch's count is the calling thread's (an OpenMP setting). OpenBLAS's is one
// per process: while scopes on several threads overlap (a background retrain
// beside an embed or a batched search), it is the smallest count any of them
// asked for, so a scope's cap holds for the whole process; when the last scope
// ends it returns to what it was before the first. Scopes restore the torch
// count they found.
#pragma once

namespace embedapt {

// A scope capping OpenBLAS's process-wide thread count at `threads` (the
// smallest cap of the scopes open on any thread holds); nothing where LibTorch
// does not compute in OpenBLAS. For BLAS calls made from threads that are
// already parallel: a batched FAISS search whose OpenMP threads each run an
// sgemm (index/vector_index.cpp).
class BlasThreads {
 public:
  explicit BlasThreads(int threads);  // threads >= 1
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

  // OpenBLAS's process-wide thread count now, or 0 when LibTorch does not
  // use OpenBLAS (for tests and benchmarks).
  static int current();

 private:
  int threads_;
};

// LibTorch (Debian's, on OpenMP) sets a thread's OpenMP count on the first
// parallel op it runs there, and left 1 on threads that had 2 (a fresh
// thread's torch::zeros({1000, 1000}).add_(1), tests/test_adapter.cpp), for
// good: every later batched FAISS search from that thread ran on one thread
// (store_bench: once an adapter had been activated, its batches of 64 on
// HNSW32 took one CPU-second per wall second, not two). A scope puts back the
// count it found (index/vector_index.cpp's OneThreadFor holds one too). The
// entry points that run LibTorch on their caller's thread outside a
// ComputeThreads (whose torch count, restored, is that OpenMP count) hold
// one: loading an adapter, applying a LibTorch one.
class KeepOpenMpThreads {
 public:
  KeepOpenMpThreads();
  ~KeepOpenMpThreads();
  KeepOpenMpThreads(const KeepOpenMpThreads&) = delete;
  KeepOpenMpThreads& operator=(const KeepOpenMpThreads&) = delete;

 private:
  int threads_;
};

class ComputeThreads {
 public:
  explicit ComputeThreads(int threads);  // threads >= 1
  ~ComputeThreads();
  ComputeThreads(const ComputeThreads&) = delete;
  ComputeThreads& operator=(const ComputeThreads&) = delete;

 private:
  int torch_before_;
  BlasThreads blas_;
};

}  // namespace embedapt
