// How the subcommands open an existing store: for writing, or read-only.
#include <cstdio>

#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

std::unique_ptr<Store> open_existing(const std::string& db, bool trust_code, bool read_only) {
  Options options;
  options.create_if_missing = false;
  options.trust_code = trust_code;
  options.read_only = read_only;
  std::unique_ptr<Store> store;
  check(Store::open(db, options, &store));
  StoreStats stats;
  check(store->stats(&stats));
  if (!stats.active_adapter_error.empty()) {
    std::fprintf(stderr, "embedapt: warning: %s\n", stats.active_adapter_error.c_str());
  }
  return store;
}

}  // namespace

std::unique_ptr<Store> open_existing_store(const std::string& db, bool trust_code) {
  return open_existing(db, trust_code, /*read_only=*/false);
}

std::unique_ptr<Store> open_store_read_only(const std::string& db, bool trust_code) {
  return open_existing(db, trust_code, /*read_only=*/true);
}

}  // namespace embedapt::cli
