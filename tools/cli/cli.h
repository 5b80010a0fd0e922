// Shared by the `embedapt` subcommands: how each registers itself and how
// errors reach the user (one line on stderr, non-zero exit).
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "embedapt/embedder.h"
#include "embedapt/status.h"
#include "embedapt/store.h"

namespace embedapt::cli {

// Exit codes: 0 success, 1 the operation failed; bad usage exits with
// CLI11's own codes (105 a value a check refused, 109 an unknown argument, ...).
constexpr int kExitFailure = 1;

// Thrown by a subcommand's callback to end the program with one error line.
struct Failure {
  std::string message;
};

// For options read into unsigned integers: CLI11 (2.1) reads "-1" as
// 2^64 - 1 (--batch -1 wrote everything in one batch, adapters activate -1
// looked for version 18446744073709551615).
inline const CLI::Validator kNotNegative(
    [](std::string& value) { return value.rfind('-', 0) == 0 ? std::string("must not be negative") : ""; },
    "NOT NEGATIVE");

// Throws Failure with `s` as the message when `s` is not ok.
inline void check(const Status& s) {
  if (!s.ok()) throw Failure{s.message()};
}

// check() for a search given --ef-search and --nprobe: the store's errors
// about those knobs ("ef_search: ...", "nprobe: ...", perhaps after a
// context such as the evaluated system's name) name the flag instead.
inline void check_search(const Status& s) {
  if (s.code() == Code::kInvalidArgument) {
    for (const std::string knob : {"ef_search", "nprobe"}) {
      const size_t at = s.message().find(knob + ": ");
      const bool leads =
          at == 0 || (at != std::string::npos && at >= 2 && s.message().compare(at - 2, 2, ": ") == 0);
      if (!leads) continue;
      std::string flag = knob;
      std::replace(flag.begin(), flag.end(), '_', '-');
      throw Failure{"--" + flag + s.message().substr(at + knob.size())};
    }
  }
  check(s);
}

// --ef-search and --nprobe (SearchOptions::ef_search, ::nprobe), for the
// commands that search. SearchOptions reads 0 as "the index's default", so a
// 0 given on the command line is refused here (it searched at the default);
// the store checks every other value.
inline void add_index_knobs(CLI::App* cmd, int* ef_search, int* nprobe) {
  const CLI::Validator not_zero(
      [](std::string& value) {
        char* end = nullptr;
        const long parsed = std::strtol(value.c_str(), &end, 10);
        return end != value.c_str() && *end == '\0' && parsed == 0
                   ? std::string("must be at least 1 (leave it out for the index's default)")
                   : std::string();
      },
      "NOT 0");
  cmd->add_option("--ef-search", *ef_search,
                  "HNSW: candidates a search keeps (FAISS efSearch); more is slower and finds more. "
                  "Default: the index's (16)")
      ->check(not_zero);
  cmd->add_option(
         "--nprobe", *nprobe,
         "IVF: lists a search probes (FAISS nprobe); more is slower and finds more. Default: the index's (1)")
      ->check(not_zero);
}

// --timeout, for the commands that build an embedder from --embedder: the
// longest wait for one request, to a command: child (its answer) or an
// openai: server (each attempt). Left out, each keeps its own default.
inline CLI::Option* add_embedder_timeout(CLI::App* cmd, std::optional<double>* seconds) {
  return cmd->add_option(
      "--timeout", *seconds,
      "Seconds an embedding request may take: command: the child's answer, openai: each HTTP "
      "attempt (default 300 and 120)");
}

// set_request_timeout with `seconds`, when given.
inline void set_embedder_timeout(const std::optional<double>& seconds, EmbedderOptions* options) {
  if (!seconds) return;
  const Status set = set_request_timeout(*seconds, options);
  if (!set.ok()) throw Failure{"--timeout: " + set.message()};
}

// Whether two output paths name one file: as spelled ("out.json",
// "./out.json") or through the directories and links that exist ("dir/" a
// symlink to the working directory). The commands that write two files
// refuse that before anything runs: the second write replaced the first.
inline bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec_a, ec_b;
  const std::filesystem::path real_a = std::filesystem::weakly_canonical(a, ec_a);
  const std::filesystem::path real_b = std::filesystem::weakly_canonical(b, ec_b);
  if (ec_a || ec_b)
    return std::filesystem::path(a).lexically_normal() == std::filesystem::path(b).lexically_normal();
  return real_a == real_b;
}

// Opens the store at `db`, which must exist (options as stored), for writing.
// `trust_code` (the commands' --trust-code) lets it load a TorchScript
// adapter version (Options::trust_code says why that needs consent). An
// active adapter that cannot be served is a warning on stderr, not a failure
// (Store::open says why).
std::unique_ptr<Store> open_existing_store(const std::string& db, bool trust_code = false);

// The same, read-only (Options::read_only): for the commands that only read,
// so they work on a store another process holds open for writing.
std::unique_ptr<Store> open_store_read_only(const std::string& db, bool trust_code = false);

// Each subcommand lives in its own file and adds itself to the app.
void add_ingest_command(CLI::App& app);
void add_search_command(CLI::App& app);
void add_remove_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_embed_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_split_command(CLI::App& app);
void add_retrain_command(CLI::App& app);
void add_adapters_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_milvus_command(CLI::App& app);

}  // namespace embedapt::cli
