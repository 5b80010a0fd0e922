// `embedapt remove`: deletes every record a metadata filter matches, in one
// atomic write.
#include <cstdio>
#include <memory>
#include <string>

#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

struct RemoveArgs {
  std::string db;
  std::string filter;
  bool trust_code = false;
};

void run_remove(const RemoveArgs& args) {
  Filter filter;
  Status s = Filter::parse(args.filter, &filter);
  if (!s.ok()) throw Failure{"--" + s.message()};  // "--filter: <the problem>"
  std::unique_ptr<Store> store = open_existing_store(args.db, args.trust_code);
  uint64_t removed = 0;
  check(store->remove_matching(filter, &removed));
  check(store->flush());
  std::printf("removed %llu\n", static_cast<unsigned long long>(removed));
}

}  // namespace

void add_remove_command(CLI::App& app) {
  auto args = std::make_shared<RemoveArgs>();
  CLI::App* cmd =
      app.add_subcommand("remove", "Remove every record whose metadata matches a filter, atomically");
  cmd->add_option("db", args->db, "Store directory")->required();
  cmd->add_option("--filter", args->filter, "A JSON metadata filter ('{}' matches every record)")->required();
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript active adapter (it is code)");
  cmd->callback([args] { run_remove(*args); });
}

}  // namespace embedapt::cli
