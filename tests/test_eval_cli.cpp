// `embedapt split` and `embedapt eval` as a user runs them: the real binary,
// a real store on disk, a real subprocess model (command:), real files.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/common/files.h"
#include "core/common/safetensors.h"
#include "core/eval/dataset.h"
#include "core/eval/evaluator.h"
#include "core/eval/ingest.h"
#include "embedapt/adapter.h"
#include "embedapt/embedder.h"
#include "embedapt/store.h"
#include "tests/support/catch.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace embedapt;

namespace {

const std::string kCli = EMBEDAPT_BINARY_DIR "/bin/embedapt";
const std::string kFixtures = EMBEDAPT_SOURCE_DIR "/tests/data/datasets/";
const std::string kModel = "command:python3 " EMBEDAPT_SOURCE_DIR "/tests/data/fake_command_embedder.py";

fs::path work_dir(const std::string& name) {
  fs::path dir = fs::path(EMBEDAPT_BINARY_DIR) / "test_eval_cli" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the CLI with `args`, stdout and stderr captured in files of `dir`.
Run run_cli(const std::vector<std::string>& args, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  std::vector<char*> argv = {const_cast<char*>(kCli.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kCli.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  Run run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  REQUIRE(read_file(out.string(), &run.out).ok());
  REQUIRE(read_file(err.string(), &run.err).ok());
  return run;
}

std::set<std::string> query_ids(const QaDataset& d) {
  std::set<std::string> ids;
  for (const auto& q : d.queries) ids.insert(q.id);
  return ids;
}

std::unique_ptr<Embedder> fake_model(const fs::path& dir) {
  EmbedderOptions options;
  options.cache_dir = (dir / "cache").string();
  std::unique_ptr<Embedder> embedder;
  Status s = make_embedder(kModel, options, &embedder);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return embedder;
}

// A store at dir/db holding tiny.json embedded with the fake model.
void build_store(const fs::path& dir, Embedder& embedder) {
  QaDataset dataset;
  REQUIRE(read_llamaindex_json(kFixtures + "tiny.json", &dataset).ok());
  Options options;
  options.dim = embedder.dim();
  std::unique_ptr<Store> store;
  REQUIRE(Store::open((dir / "db").string(), options, &store).ok());
  REQUIRE(ingest_dataset(*store, embedder, dataset, IngestOptions{}, nullptr).ok());
  REQUIRE(store->flush().ok());
}

// A linear adapter for `embedder` holding the identity matrix, exported to
// `out` as the exchange directory (config.json + adapter.safetensors).
void export_identity_adapter(const Embedder& embedder, const fs::path& out) {
  const int dim = embedder.dim();
  nlohmann::json config = {{"kind", "linear"},
                           {"in_dim", dim},
                           {"out_dim", dim},
                           {"side", "query"},
                           {"embedder", embedder.identity()}};
  std::vector<float> eye(static_cast<size_t>(dim) * dim, 0.0f);
  for (int i = 0; i < dim; ++i) eye[static_cast<size_t>(i) * dim + i] = 1.0f;
  TensorMap tensors{{"linear.weight", floats_to_tensor(eye, {dim, dim})}};
  REQUIRE(write_adapter_dir(out.string(), config.dump(), serialize_safetensors(tensors)).ok());
}

}  // namespace

TEST_CASE("split writes two seeded halves over the whole corpus", "[cli][split]") {
  fs::path dir = work_dir("split");
  const std::vector<std::string> args = {"split",      kFixtures + "tiny.json",
                                         "--fraction", "0.34",
                                         "--seed",     "3",
                                         "--out-a",    (dir / "a.json").string(),
                                         "--out-b",    (dir / "b.json").string()};
  Run run = run_cli(args, dir);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  QaDataset a, b;
  REQUIRE(read_llamaindex_json((dir / "a.json").string(), &a).ok());
  REQUIRE(read_llamaindex_json((dir / "b.json").string(), &b).ok());
  CHECK(a.queries.size() == 1);  // round(0.34 * 3)
  CHECK(b.queries.size() == 2);
  CHECK(a.corpus.size() == 5);
  CHECK(b.corpus.size() == 5);
  std::set<std::string> all = query_ids(a), ib = query_ids(b);
  all.insert(ib.begin(), ib.end());
  CHECK(all == std::set<std::string>{"q1", "q2", "q3"});

  std::string first_a;
  REQUIRE(read_file((dir / "a.json").string(), &first_a).ok());
  REQUIRE(run_cli(args, dir).exit_code == 0);
  std::string second_a;
  REQUIRE(read_file((dir / "a.json").string(), &second_a).ok());
  CHECK(first_a == second_a);
}

TEST_CASE("split fails with one line and writes nothing", "[cli][split]") {
  fs::path dir = work_dir("split_errors");
  const std::string a = (dir / "a.json").string(), b = (dir / "b.json").string();
  Run run = run_cli({"split", kFixtures + "dangling_doc.json", "--out-a", a, "--out-b", b}, dir);
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::StartsWith("embedapt: ") && Catch::Contains("dangling_doc.json") &&
                          Catch::Contains("no such document"));
  CHECK_FALSE(fs::exists(a));
  CHECK_FALSE(fs::exists(b));

  run = run_cli({"split", kFixtures + "tiny.json", "--out-a", a, "--out-b", a}, dir);
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("same file"));
  CHECK_FALSE(fs::exists(a));
  // 0 and 1 passed the flag's range and failed in the library under the
  // dataset's name; NaN passed both.
  for (const std::string fraction : {"0", "1", "nan"}) {
    run =
        run_cli({"split", kFixtures + "tiny.json", "--out-a", a, "--out-b", b, "--fraction", fraction}, dir);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Catch::StartsWith("embedapt: --fraction: must be in (0, 1)"));
    CHECK_FALSE(fs::exists(a));
  }
  // The same file spelled two ways: relative to the working directory and
  // through a link to its directory. Compared as spelled, both passed, and
  // half b replaced half a.
  fs::create_directory_symlink(dir, dir / "here");
  for (const std::string& other : {fs::relative(a).string(), (dir / "here" / "a.json").string()}) {
    run = run_cli({"split", kFixtures + "tiny.json", "--out-a", a, "--out-b", other}, dir);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Catch::Contains("name the same file"));
    CHECK_FALSE(fs::exists(a));
  }
}

TEST_CASE("eval prints the table and writes the JSON the library computes", "[cli][eval]") {
  fs::path dir = work_dir("eval");
  std::unique_ptr<Embedder> embedder = fake_model(dir);
  build_store(dir, *embedder);
  export_identity_adapter(*embedder, dir / "identity");

  const std::string json = (dir / "report.json").string(), per_query = (dir / "per_query.jsonl").string();
  const std::string html = (dir / "report.html").string();
  Run run = run_cli({"eval", (dir / "db").string(), "--dataset", kFixtures + "tiny.json", "--embedder",
                     kModel, "--adapter", (dir / "identity").string(), "--top-k", "2", "--json", json,
                     "--per-query", per_query, "--html", html, "--cache-dir", (dir / "cli-cache").string()},
                    dir);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out,
             Catch::Contains("hit_rate") && Catch::Contains("base") && Catch::Contains("linear identity"));

  std::string text;
  REQUIRE(read_file(json, &text).ok());
  nlohmann::json report = nlohmann::json::parse(text);
  REQUIRE(report["results"].size() == 2);
  const nlohmann::json& base = report["results"][0];
  CHECK(base["name"] == "base");
  CHECK(base["adapter"].is_null());
  CHECK(base["n_queries"] == 3);
  CHECK(base["top_k"] == 2);
  for (const char* key : {"hit_rate", "mrr", "ndcg@10", "recall@10"}) CHECK(base[key].is_number());
  CHECK(base["hit_rate_ci95"].size() == 2);
  CHECK(base["mrr_ci95"].size() == 2);
  const nlohmann::json& adapted = report["results"][1];
  CHECK(adapted["adapter"] == (dir / "identity").string());
  CHECK(adapted["hit_rate"] == base["hit_rate"]);  // the identity changes nothing
  REQUIRE(report["comparisons"].size() == 2);
  CHECK(report["comparisons"][0]["a"] == adapted["name"]);
  CHECK(report["comparisons"][0]["b"] == "base");
  CHECK(report["comparisons"][0]["metric"] == "hit_rate");
  CHECK(report["comparisons"][0]["p_value"] == 1.0);
  CHECK(report["comparisons"][1]["metric"] == "mrr");

  // The same numbers as the library, in this process, on the same store.
  Options options;
  std::unique_ptr<Store> store;
  REQUIRE(Store::open((dir / "db").string(), options, &store).ok());
  QaDataset dataset;
  REQUIRE(read_llamaindex_json(kFixtures + "tiny.json", &dataset).ok());
  EvalOptions eval_options;
  eval_options.top_k = 2;
  EvalReport expected;
  REQUIRE(evaluate(*store, *embedder, dataset, {}, eval_options, &expected).ok());
  CHECK(base["hit_rate"].get<double>() == Approx(expected.results[0].hit_rate));
  CHECK(base["mrr"].get<double>() == Approx(expected.results[0].mrr));

  std::string lines;
  REQUIRE(read_file(per_query, &lines).ok());
  CHECK(std::count(lines.begin(), lines.end(), '\n') == 6);  // 3 queries x 2 systems
  nlohmann::json first = nlohmann::json::parse(lines.substr(0, lines.find('\n')));
  CHECK(first["name"] == "base");
  CHECK(first["query_id"] == "q1");
  CHECK(first["retrieved"].size() == 5);

  // The page: one chart per system, nothing to fetch (the SVG namespace is its only URL).
  std::string page;
  REQUIRE(read_file(html, &page).ok());
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = page.find(needle); at != std::string::npos; at = page.find(needle, at + 1)) ++n;
    return n;
  };
  CHECK(count("<svg") == 2);
  CHECK(count("http") == count("xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK_THAT(page, Catch::Contains("linear identity") && Catch::Contains("paired permutation"));
}

TEST_CASE("eval names an exported adapter by kind and directory, once when they are the same",
          "[cli][eval]") {
  fs::path dir = work_dir("eval_names");
  std::unique_ptr<Embedder> embedder = fake_model(dir);
  build_store(dir, *embedder);
  export_identity_adapter(*embedder, dir / "linear");
  Run run =
      run_cli({"eval", (dir / "db").string(), "--dataset", kFixtures + "tiny.json", "--embedder", kModel,
               "--adapter", (dir / "linear").string(), "--cache-dir", (dir / "cli-cache").string()},
              dir);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Catch::Contains("\nlinear ") && !Catch::Contains("linear linear"));
}

TEST_CASE("eval fails with one line naming the problem and writes no report", "[cli][eval]") {
  fs::path dir = work_dir("eval_errors");
  std::unique_ptr<Embedder> embedder = fake_model(dir);
  build_store(dir, *embedder);
  const std::string db = (dir / "db").string(), json = (dir / "report.json").string();
  auto eval = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"eval",   db,   "--embedder",  kModel,
                                     "--json", json, "--cache-dir", (dir / "cli-cache").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir);
  };

  Run run = eval({"--dataset", kFixtures + "missing_corpus.json"});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::StartsWith("embedapt: ") && Catch::Contains("missing_corpus.json"));

  run = eval({"--dataset", kFixtures + "tiny.json", "--adapter", "active"});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("--adapter active: the store has no active adapter"));

  run = eval({"--dataset", kFixtures + "tiny.json", "--adapter", (dir / "no_such_dir").string()});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("--adapter " + (dir / "no_such_dir").string()));

  run = eval({"--dataset", kFixtures + "tiny.json", "--adapter", "7"});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("--adapter 7"));

  run = eval({"--dataset", kFixtures + "tiny.json", "--adapter", "99999999999999999999999"});
  CHECK(run.exit_code == 1);  // was an uncaught std::out_of_range
  CHECK_THAT(run.err, Catch::Contains("--adapter 99999999999999999999999: no adapter version"));

  run = run_cli({"eval", (dir / "no_db").string(), "--dataset", kFixtures + "tiny.json", "--embedder", kModel,
                 "--json", json},
                dir);
  CHECK(run.exit_code == 1);
  CHECK_FALSE(fs::exists(dir / "no_db"));  // eval never creates a store
  CHECK_FALSE(fs::exists(json));

  // Report files are checked before anything runs: an --html in a missing
  // directory failed after --json was written; --json and --html naming one
  // file left the HTML in it.
  run = eval({"--dataset", kFixtures + "tiny.json", "--html", (dir / "nowhere" / "r.html").string()});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::StartsWith("embedapt: --html ") && Catch::Contains("no directory"));
  CHECK_FALSE(fs::exists(json));
  run = eval({"--dataset", kFixtures + "tiny.json", "--html", json});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("--html and --json name the same file"));
  CHECK_FALSE(fs::exists(json));
  fs::create_directory_symlink(dir, dir / "link");
  run = eval({"--dataset", kFixtures + "tiny.json", "--per-query", (dir / "link" / "report.json").string()});
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Catch::Contains("--per-query and --json name the same file"));
  CHECK_FALSE(fs::exists(json));
}
