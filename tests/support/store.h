// Opening a store in a test: the open must succeed, and when it does not the
// failure names the directory and the Status.
#pragma once

#include <memory>
#include <string>

#include "embedapt/store.h"
#include "tests/support/catch.h"

namespace embedapt::testing {

inline std::unique_ptr<Store> open_store(const std::string& path, const Options& options) {
  std::unique_ptr<Store> store;
  Status s = Store::open(path, options, &store);
  INFO(path << ": " << s.ToString());
  REQUIRE(s.ok());
  return store;
}

// A store of `dim` dimensions over the index `spec`, every other option at
// its default.
inline std::unique_ptr<Store> open_store(const std::string& path, int dim, const std::string& spec = "Flat") {
  Options options;
  options.dim = dim;
  options.index_spec = spec;
  return open_store(path, options);
}

}  // namespace embedapt::testing
