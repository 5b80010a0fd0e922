// The store's CLI (ingest, search, inspect) run as a user would, via popen.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "core/common/files.h"
#include "core/common/npy.h"
#include "embedapt/store.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace embedapt;
using embedapt::testing::CliRun;
using embedapt::testing::run_cli;

namespace {

Matrix random_matrix(size_t rows, size_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.data.resize(rows * cols);
  for (float& x : m.data) x = normal(rng);
  return m;
}

}  // namespace

TEST_CASE("ingest, search, inspect and verify from the command line", "[cli][store]") {
  std::string dir = (fs::temp_directory_path() / ("embedapt-cli-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = dir + "/db", vectors = dir + "/v.npy", queries = dir + "/q.npy";
  Matrix m = random_matrix(250, 12, 1);
  REQUIRE(write_npy(vectors, m).ok());
  Matrix q;
  q.rows = 3;
  q.cols = 12;
  q.data.assign(m.row(10), m.row(13));  // rows 10, 11, 12
  REQUIRE(write_npy(queries, q).ok());

  CliRun ingest = run_cli("ingest " + db + " --npy " + vectors + " --metric l2 --batch 100");
  INFO(ingest.output);
  REQUIRE(ingest.exit_code == 0);
  CHECK(ingest.output == "committed 100\ncommitted 200\ncommitted 250\n");

  CliRun search = run_cli("search " + db + " --npy " + queries + " -k 4 --json " + dir + "/r.json");
  INFO(search.output);
  REQUIRE(search.exit_code == 0);
  std::string text;
  REQUIRE(read_file(dir + "/r.json", &text).ok());
  nlohmann::json results = nlohmann::json::parse(text)["results"];
  REQUIRE(results.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(results[i]["query"] == i);
    CHECK(results[i]["ids"].size() == 4);
    CHECK(results[i]["ids"][0] == std::to_string(10 + i));
    CHECK(results[i]["scores"][0].get<double>() == Approx(0.0).margin(1e-4));
    CHECK(results[i]["scores"][0].get<double>() <= results[i]["scores"][3].get<double>());
  }
  CliRun table = run_cli("search " + db + " --npy " + queries + " -k 1");
  CHECK(table.exit_code == 0);
  CHECK(table.output.find(" 11\n") != std::string::npos);

  // Re-ingesting with explicit ids extends the store.
  std::ofstream(dir + "/ids.txt") << "x\ny\n";
  REQUIRE(write_npy(dir + "/two.npy", random_matrix(2, 12, 2)).ok());
  CliRun extend = run_cli("ingest " + db + " --npy " + dir + "/two.npy --ids " + dir + "/ids.txt");
  INFO(extend.output);
  CHECK(extend.exit_code == 0);

  CliRun inspect = run_cli("inspect " + db + " --json");
  INFO(inspect.output);
  REQUIRE(inspect.exit_code == 0);
  nlohmann::json stats = nlohmann::json::parse(inspect.output);
  CHECK(stats["count"] == 252);
  CHECK(stats["dim"] == 12);
  CHECK(stats["metric"] == "l2");
  CHECK(stats["index"] == "Flat");
  CHECK(stats["snapshot_seq"] == stats["journal_seq"]);
  CHECK(stats["disk_bytes"].get<uint64_t>() > m.data.size() * sizeof(float));

  CliRun verify = run_cli("inspect " + db + " verify");
  INFO(verify.output);
  CHECK(verify.exit_code == 0);
  CliRun get = run_cli("inspect " + db + " get y");
  INFO(get.output);
  REQUIRE(get.exit_code == 0);
  CHECK(nlohmann::json::parse(get.output)["vector"].size() == 12);

  // Errors: one line naming the problem, exit 1, no partial output.
  CliRun missing = run_cli("inspect " + dir + "/nothere");
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.rfind("embedapt: ", 0) == 0);
  CHECK(missing.output.find("nothere") != std::string::npos);
  CliRun wrong_dim = run_cli("search " + db + " --npy " + dir + "/two.npy -k 2 --json " + dir + "/bad.json");
  CHECK(wrong_dim.exit_code == 0);  // 12 columns: fine
  REQUIRE(write_npy(dir + "/narrow.npy", random_matrix(2, 5, 3)).ok());
  CliRun narrow =
      run_cli("search " + db + " --npy " + dir + "/narrow.npy -k 2 --json " + dir + "/narrow.json");
  CHECK(narrow.exit_code == 1);
  CHECK(narrow.output.find("5 dims") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/narrow.json"));
  CliRun ef =
      run_cli("search " + db + " --npy " + queries + " -k 2 --ef-search 32 --json " + dir + "/ef.json");
  CHECK(ef.exit_code == 1);
  CHECK(ef.output == "embedapt: --ef-search: applies to HNSW indexes; this store's index is 'Flat'\n");
  CHECK_FALSE(fs::exists(dir + "/ef.json"));
  CliRun nprobe = run_cli("search " + db + " --npy " + queries + " -k 2 --nprobe 4");
  CHECK(nprobe.exit_code == 1);
  CHECK(nprobe.output.rfind("embedapt: --nprobe: applies to IVF indexes", 0) == 0);
  // Flags the parser let through: 0 searched at the default, and -1 read
  // into an unsigned flag was 2^64 - 1. Bad usage is one line, too.
  CliRun ef_zero = run_cli("search " + db + " --npy " + queries + " --ef-search 0");
  CHECK(ef_zero.exit_code != 0);
  CHECK(ef_zero.output.rfind("embedapt: --ef-search: must be at least 1", 0) == 0);
  CliRun negative = run_cli("ingest " + db + " --npy " + vectors + " --batch -1");
  CHECK(negative.exit_code != 0);
  CHECK(negative.output.rfind("embedapt: --batch: must not be negative", 0) == 0);
  CliRun text_flag = run_cli("ingest " + db + " --npy " + vectors + " --embedder openai:x");  // was ignored
  CHECK(text_flag.exit_code != 0);
  CHECK(text_flag.output.rfind("embedapt: --embedder requires --dataset", 0) == 0);
  CliRun unknown_flag = run_cli("search " + db + " --bogus");
  CHECK(unknown_flag.exit_code != 0);
  CHECK(std::count(unknown_flag.output.begin(), unknown_flag.output.end(), '\n') == 1);
  CliRun ids_mismatch = run_cli("ingest " + db + " --npy " + vectors + " --ids " + dir + "/ids.txt");
  CHECK(ids_mismatch.exit_code == 1);
  CHECK(ids_mismatch.output.find("2 ids for 250 vectors") != std::string::npos);
  CliRun metric_mismatch = run_cli("ingest " + db + " --npy " + dir + "/two.npy --metric ip");
  CHECK(metric_mismatch.exit_code == 1);
  CHECK(metric_mismatch.output.find("metric") != std::string::npos);
  CliRun unknown = run_cli("inspect " + db + " get nobody");
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.output.find("nobody") != std::string::npos);

  // A repeated id was stored once (two records from three rows), silently.
  REQUIRE(write_file_atomic(dir + "/dup.txt", "a\na\nb\n").ok());
  Matrix three = random_matrix(3, 12, 4);
  REQUIRE(write_npy(dir + "/three.npy", three).ok());
  Matrix nan_row = three;
  nan_row.data[2 * 12 + 1] = std::nanf("");  // row 3
  REQUIRE(write_npy(dir + "/nan_row.npy", nan_row).ok());
  // A bad row of a later batch: the message says which rows its batch held.
  CliRun later = run_cli("ingest " + dir + "/later --npy " + dir + "/nan_row.npy --batch 2");
  CHECK(later.exit_code == 1);
  CHECK(later.output.find("committed 2\n") != std::string::npos);
  CHECK(later.output.find("rows 3 to 3 of 3: ") != std::string::npos);
  CHECK(later.output.find("(the new store " + dir + "/later was removed)") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/later"));
  CliRun dup = run_cli("ingest " + db + " --npy " + dir + "/three.npy --ids " + dir + "/dup.txt");
  CHECK(dup.exit_code == 1);
  CHECK(dup.output.find("dup.txt:2: id 'a' repeats line 1") != std::string::npos);
  // A failed ingest into a new path leaves no store there (the empty one it
  // made kept the failed run's dimension for the next try).
  three.data[5] = std::nanf("");
  REQUIRE(write_npy(dir + "/nan.npy", three).ok());
  CliRun nan = run_cli("ingest " + dir + "/fresh --npy " + dir + "/nan.npy");
  CHECK(nan.exit_code == 1);
  CHECK_FALSE(fs::exists(dir + "/fresh"));
  CliRun retry = run_cli("ingest " + dir + "/fresh --npy " + queries);
  CHECK(retry.exit_code == 0);
  fs::remove_all(dir);
}

TEST_CASE("ingest --metadata, search --filter, inspect get, remove --filter from the command line",
          "[cli][store][filter]") {
  std::string dir =
      (fs::temp_directory_path() / ("embedapt-cli-filter-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = dir + "/db", vectors = dir + "/v.npy", meta = dir + "/meta.jsonl";
  Matrix m = random_matrix(40, 6, 3);
  REQUIRE(write_npy(vectors, m).ok());
  std::string lines;
  for (int i = 0; i < 40; ++i) {
    lines += "{\"id\": \"" + std::to_string(i) + "\", \"metadata\": {\"shard\": " + std::to_string(i % 4) +
             ", \"lang\": \"" + (i < 10 ? "da" : "en") + "\"}}\n";
  }
  REQUIRE(write_file_atomic(meta, lines).ok());

  CliRun ingest = run_cli("ingest " + db + " --npy " + vectors + " --metadata " + meta);
  INFO(ingest.output);
  REQUIRE(ingest.exit_code == 0);
  CliRun search = run_cli("search " + db + " --npy " + vectors + " -k 20 --json " + dir +
                          "/r.json --filter '{\"lang\": \"da\", \"shard\": {\"$ne\": 0}}'");
  INFO(search.output);
  REQUIRE(search.exit_code == 0);
  std::string text;
  REQUIRE(read_file(dir + "/r.json", &text).ok());
  nlohmann::json results = nlohmann::json::parse(text)["results"];
  REQUIRE(results.size() == 40);
  for (const auto& r : results) {
    REQUIRE(r["ids"].size() == 7);  // ids 1, 2, 3, 5, 6, 7, 9
    for (const auto& metadata : r["metadata"]) {
      CHECK(metadata["lang"] == "da");
      CHECK(metadata["shard"] != 0);
    }
  }
  CliRun get = run_cli("inspect " + db + " get 5");
  REQUIRE(get.exit_code == 0);
  CHECK(nlohmann::json::parse(get.output)["metadata"] == nlohmann::json({{"lang", "da"}, {"shard", 1}}));

  // Bad filters and metadata: one line naming the flag or file, non-zero exit, nothing written.
  CliRun bad = run_cli("search " + db + " --npy " + vectors + " --filter '{\"shard\": {\"$gt\": \"x\"}}'");
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("--filter: $gt on 'shard' needs a number") != std::string::npos);
  CHECK(std::count(bad.output.begin(), bad.output.end(), '\n') == 1);
  REQUIRE(write_file_atomic(dir + "/typo.jsonl", "{\"id\": \"400\", \"metadata\": {}}\n").ok());
  CliRun typo = run_cli("ingest " + db + " --npy " + vectors + " --metadata " + dir + "/typo.jsonl");
  CHECK(typo.exit_code != 0);
  CHECK(typo.output.find("typo.jsonl: metadata for id '400'") != std::string::npos);
  // 100,000 nested brackets parsed, then overflowed the stack when written
  // back out (a segfault): refused while parsing.
  const size_t levels = 100000;
  REQUIRE(write_file_atomic(dir + "/deep.jsonl",
                            "{\"id\": \"1\", \"metadata\": {\"x\": " + std::string(levels, '[') +
                                std::string(levels, ']') + "}}\n")
              .ok());
  CliRun deep = run_cli("ingest " + db + " --npy " + vectors + " --metadata " + dir + "/deep.jsonl");
  CHECK(deep.exit_code == 1);
  CHECK(deep.output.find("deep.jsonl:1: JSON nested deeper than 64 levels") != std::string::npos);

  CliRun remove = run_cli("remove " + db + " --filter '{\"lang\": \"en\"}'");
  INFO(remove.output);
  REQUIRE(remove.exit_code == 0);
  CHECK(remove.output == "removed 30\n");
  CliRun verify = run_cli("inspect " + db + " verify");
  INFO(verify.output);
  CHECK(verify.exit_code == 0);
  CHECK(verify.output.find("ok: 10 records") != std::string::npos);
  // Output that could not be written is a failure (it exited 0).
  CHECK(run_cli("inspect " + db + " --json > /dev/full").exit_code == 1);
  CHECK(run_cli("search " + db + " --npy " + vectors + " -k 3 > /dev/full").exit_code == 1);
  fs::remove_all(dir);
}

TEST_CASE("read_npy refuses a shape too large to represent, without throwing", "[npy]") {
  std::string path =
      (fs::temp_directory_path() / ("embedapt-npy-" + std::to_string(getpid()) + ".npy")).string();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 4), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  REQUIRE(write_file_atomic(path, bytes + header).ok());
  Matrix m;
  Status s = read_npy(path, &m);  // was an uncaught std::out_of_range from stoull
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("99999999999999999999999 is too large"));
  fs::remove(path);
}

TEST_CASE("a .npy with a zero dimension and a huge other one, or a malformed dict, is refused", "[npy]") {
  auto npy = [](const std::string& shape, const std::string& dict_end = ", }") {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + dict_end;
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header.push_back('\n');
    std::string bytes("\x93NUMPY\x01\x00", 8);
    bytes.push_back(static_cast<char>(header.size() & 0xff));
    bytes.push_back(static_cast<char>(header.size() >> 8));
    return bytes + header;
  };
  Matrix m;
  // No bytes vouch for the huge dimension; callers sized loops by it.
  CHECK(parse_npy(npy("(1000000000000000000, 0)"), &m).code() == Code::kInvalidArgument);
  CHECK(parse_npy(npy("(0, 1000000000000000000)"), &m).code() == Code::kInvalidArgument);
  CHECK(parse_npy(npy("(0,)"), &m).code() == Code::kInvalidArgument);
  REQUIRE(parse_npy(npy("(0, 384)"), &m).ok());  // fuzz_npy: was a memcpy to null (UBSan)
  CHECK(m.rows == 0);
  CHECK(m.cols == 384);
  // Both were read as if well formed.
  CHECK(parse_npy(npy("(0, 384)", ", "), &m).message().find("not a dict") != std::string::npos);
  CHECK(parse_npy(npy("(0, 384)", ", 'descr': '<f8', }"), &m).message().find("'descr' twice") !=
        std::string::npos);
}

TEST_CASE("search --json writes an id that is not UTF-8, replacing its bad bytes", "[cli][store]") {
  const std::string dir =
      (fs::temp_directory_path() / ("embedapt-cli-utf8-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    Options options;
    options.dim = 4;
    std::unique_ptr<Store> store;
    REQUIRE(Store::open(dir + "/db", options, &store).ok());
    REQUIRE(store->upsert("bad\xff\xfe-id", std::vector<float>{1, 0, 0, 0}.data(), 4, "").ok());
  }
  Matrix q;
  q.rows = 1;
  q.cols = 4;
  q.data = {1, 0, 0, 0};
  REQUIRE(write_npy(dir + "/q.npy", q).ok());
  CliRun search = run_cli("search " + dir + "/db --npy " + dir + "/q.npy -k 1 --json " + dir + "/r.json");
  INFO(search.output);
  REQUIRE(search.exit_code == 0);
  std::string text;
  REQUIRE(read_file(dir + "/r.json", &text).ok());
  CHECK(nlohmann::json::parse(text)["results"][0]["ids"][0] == "bad\xEF\xBF\xBD\xEF\xBF\xBD-id");
  CliRun inspect = run_cli("inspect " + dir + "/db --json");
  CHECK(inspect.exit_code == 0);
  fs::remove_all(dir);
}

TEST_CASE("retrain refuses --epochs and --lr that are not positive", "[cli][retrain]") {
  for (const char* flag : {"--epochs 0", "--epochs -1", "--lr 0", "--lr -0.5"}) {
    CliRun run = run_cli(std::string("retrain /nonexistent-store ") + flag);
    INFO(run.output);
    CHECK(run.exit_code != 0);
    CHECK(run.output.find(std::string(flag).substr(0, std::string(flag).find(' ')) + ": must be positive") !=
          std::string::npos);
    CHECK(run.output.find("nonexistent-store") == std::string::npos);  // refused before anything ran
  }
}
