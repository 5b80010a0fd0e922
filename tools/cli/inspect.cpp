// `embedapt inspect`: a store's statistics, a consistency check, one record.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {
namespace {

struct InspectArgs {
  std::string db;
  bool json = false;
  std::string id;
  bool trust_code = false;
};

nlohmann::json stats_json(const StoreStats& s, const std::vector<AdapterVersion>& adapters) {
  nlohmann::json versions = nlohmann::json::array();
  for (const AdapterVersion& v : adapters) {
    versions.push_back({{"version", v.version}, {"parent", v.parent}, {"created_unix", v.created_unix}});
  }
  return {{"count", s.count},
          {"dim", s.dim},
          {"metric", MetricName(s.metric)},
          {"index", s.index_spec},
          {"journal_seq", s.journal_seq},
          {"snapshot_seq", s.snapshot_seq},
          {"disk_bytes", s.disk_bytes},
          {"embedder", s.embedder},
          {"active_adapter", s.active_adapter},
          {"active_adapter_error", s.active_adapter_error},
          {"adapter_versions", versions},
          {"logged_queries", s.logged_queries},
          {"logged_hits", s.logged_hits},
          {"recovery", s.recovery}};
}

void run_stats(const InspectArgs& args) {
  std::unique_ptr<Store> store = open_store_read_only(args.db, args.trust_code);
  StoreStats stats;
  std::vector<AdapterVersion> adapters;
  check(store->stats(&stats));
  check(store->list_adapters(&adapters));
  nlohmann::json j = stats_json(stats, adapters);
  if (args.json) {
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  for (auto& [key, value] : j.items()) {
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    std::printf("%-17s %s\n", key.c_str(), text.c_str());
  }
}

void run_verify(const InspectArgs& args) {
  std::unique_ptr<Store> store = open_store_read_only(args.db, args.trust_code);
  check(store->verify());
  StoreStats stats;
  check(store->stats(&stats));
  std::printf("ok: %llu records, index and RocksDB agree\n", static_cast<unsigned long long>(stats.count));
}

void run_get(const InspectArgs& args) {
  std::unique_ptr<Store> store = open_store_read_only(args.db, args.trust_code);
  Record record;
  check(store->get(args.id, &record));
  // Payloads are bytes; JSON needs valid UTF-8, so invalid sequences are replaced.
  nlohmann::json j = {{"id", record.id},
                      {"vector", record.vector},
                      {"payload", record.payload},
                      {"metadata", record.metadata.empty() ? nlohmann::json::object()
                                                           : nlohmann::json::parse(record.metadata)}};
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a store's statistics, verify it, or get a record");
  cmd->add_option("db", args->db, "Store directory")->required();
  cmd->add_flag("--json", args->json, "Print the statistics as JSON");
  cmd->add_flag("--trust-code", args->trust_code, "Allow a TorchScript active adapter (it is code)");
  cmd->fallthrough();  // `inspect DB verify --trust-code` too
  CLI::App* verify = cmd->add_subcommand(
      "verify", "Check that the index, the metadata index and RocksDB agree (exit 1 if not)");
  CLI::App* get = cmd->add_subcommand("get", "Print one record as JSON");
  get->add_option("id", args->id, "Record id")->required();
  cmd->require_subcommand(0, 1);
  verify->callback([args] { run_verify(*args); });
  get->callback([args] { run_get(*args); });
  cmd->final_callback([cmd, args] {
    if (cmd->get_subcommands().empty()) run_stats(*args);
  });
}

}  // namespace embedapt::cli
