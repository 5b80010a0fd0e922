#include "core/adapt/compute_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <omp.h>

#include <mutex>
#include <set>

namespace embedapt {
namespace {

// OpenBLAS's thread-count calls, looked up at run time: LibTorch may be
// built over another BLAS, and then nothing here touches BLAS.
struct OpenBlas {
  void (*set)(int) = nullptr;
  int (*get)() = nullptr;
};

const OpenBlas& openblas() {
  static const OpenBlas api = [] {
    OpenBlas a;
    a.set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    a.get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (!a.set || !a.get) a = OpenBlas();
    return a;
  }();
  return api;
}

// The scopes open now (their counts) and the count before the first.
struct BlasScopes {
  std::mutex mu;
  std::multiset<int> open;
  int before = 0;
};

BlasScopes& blas_scopes() {
  static BlasScopes scopes;
  return scopes;
}

}  // namespace

BlasThreads::BlasThreads(int threads) : threads_(threads) {
  const OpenBlas& blas = openblas();
  if (!blas.set) return;
  BlasScopes& scopes = blas_scopes();
  std::lock_guard<std::mutex> lock(scopes.mu);
  if (scopes.open.empty()) scopes.before = blas.get();
  scopes.open.insert(threads);
  blas.set(*scopes.open.begin());
}

BlasThreads::~BlasThreads() {
  const OpenBlas& blas = openblas();
  if (!blas.set) return;
  BlasScopes& scopes = blas_scopes();
  std::lock_guard<std::mutex> lock(scopes.mu);
  scopes.open.erase(scopes.open.find(threads_));
  blas.set(scopes.open.empty() ? scopes.before : *scopes.open.begin());
}

int BlasThreads::current() {
  const OpenBlas& blas = openblas();
  return blas.get ? blas.get() : 0;
}

KeepOpenMpThreads::KeepOpenMpThreads() : threads_(omp_get_max_threads()) {}

KeepOpenMpThreads::~KeepOpenMpThreads() { omp_set_num_threads(threads_); }

ComputeThreads::ComputeThreads(int threads) : torch_before_(at::get_num_threads()), blas_(threads) {
  at::set_num_threads(openblas().set ? 1 : threads);
}

ComputeThreads::~ComputeThreads() { at::set_num_threads(torch_before_); }

}  // namespace embedapt
