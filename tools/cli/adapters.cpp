// `embedapt adapters`: list, activate, roll back, export and import adapter versions.
#include <cstdio>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "embedapt/store.h"
#include "tools/cli/cli.h"

namespace embedapt::cli {

namespace {

struct AdaptersArgs {
  std::string db;
  uint64_t version = 0;
  std::string dir;
  bool trust_code = false;
};

std::string describe(const AdapterVersion& v) {
  AdapterConfig config;
  nlohmann::json metrics = nlohmann::json::parse(v.metrics_json, nullptr, false);
  std::string out = parse_adapter_config(v.config_json, &config).ok()
                        ? config.kind + " " + AdapterSideName(config.side)
                        : "?";
  if (metrics.is_object() && metrics.contains("adapter") && metrics.contains("base")) {
    char buffer[128];
    std::snprintf(buffer, sizeof(buffer), "  val hit@%d %.4f -> %.4f", metrics.value("top_k", 5),
                  metrics["base"].value("hit_rate", 0.0), metrics["adapter"].value("hit_rate", 0.0));
    out += buffer;
  }
  return out;
}

void list(const AdaptersArgs& args) {
  auto store = open_store_read_only(args.db, args.trust_code);
  StoreStats stats;
  check(store->stats(&stats));
  std::vector<AdapterVersion> versions;
  check(store->list_adapters(&versions));
  if (versions.empty()) std::printf("no adapter versions\n");
  for (const auto& v : versions) {
    char created[32];
    std::time_t t = static_cast<std::time_t>(v.created_unix);
    std::strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    std::printf("%s%llu  parent %llu  %s UTC  %s\n", v.version == stats.active_adapter ? "* " : "  ",
                static_cast<unsigned long long>(v.version), static_cast<unsigned long long>(v.parent),
                created, describe(v).c_str());
  }
}

void activate(const AdaptersArgs& args) {
  auto store = open_existing_store(args.db, args.trust_code);
  check(store->activate_adapter(args.version));
  std::printf("active: %llu\n", static_cast<unsigned long long>(args.version));
}

void rollback(const AdaptersArgs& args) {
  auto store = open_existing_store(args.db, args.trust_code);
  check(store->rollback_adapter());
  StoreStats stats;
  check(store->stats(&stats));
  std::printf("active: %llu\n", static_cast<unsigned long long>(stats.active_adapter));
}

void export_version(const AdaptersArgs& args) {
  auto store = open_store_read_only(args.db, args.trust_code);
  AdapterVersion v;
  check(store->get_adapter(args.version, &v));
  check(write_adapter_dir(args.dir, v.config_json, v.weights));
  std::printf("exported version %llu to %s\n", static_cast<unsigned long long>(args.version),
              args.dir.c_str());
}

void import_dir(const AdaptersArgs& args) {
  auto store = open_existing_store(args.db, args.trust_code);
  uint64_t version = 0;
  check(import_adapter_dir(store.get(), args.dir, args.trust_code, &version));
  std::printf("imported %s as version %llu\n", args.dir.c_str(), static_cast<unsigned long long>(version));
}

}  // namespace

void add_adapters_command(CLI::App& app) {
  auto args = std::make_shared<AdaptersArgs>();
  CLI::App* cmd = app.add_subcommand("adapters", "Manage a store's adapter versions");
  cmd->add_option("db", args->db, "The store directory")->required();
  cmd->add_flag("--trust-code", args->trust_code,
                "Allow TorchScript adapters (they are code): to import, activate or roll back to one, "
                "or to open a store whose active version is one");
  cmd->fallthrough();  // the flag may follow the subcommand: `adapters DB activate 2 --trust-code`
  cmd->require_subcommand(1);
  cmd->add_subcommand("list", "List the versions (* marks the active one)")->callback([args] {
    list(*args);
  });
  CLI::App* act = cmd->add_subcommand("activate", "Make a version the active one (0: none)");
  act->add_option("version", args->version)->check(kNotNegative)->required();
  act->callback([args] { activate(*args); });
  cmd->add_subcommand("rollback", "Re-activate the previously active version")->callback([args] {
    rollback(*args);
  });
  CLI::App* exp = cmd->add_subcommand("export", "Write a version as config.json + adapter.safetensors");
  exp->add_option("version", args->version)->check(kNotNegative)->required();
  exp->add_option("dir", args->dir)->required();
  exp->callback([args] { export_version(*args); });
  CLI::App* imp = cmd->add_subcommand("import", "Store an exported adapter directory as a new version");
  imp->add_option("dir", args->dir)->required();
  imp->callback([args] { import_dir(*args); });
}

}  // namespace embedapt::cli
