// The embedding cache: real RocksDB on disk, a real model server on loopback
// (counting what reaches the model), and a real second process holding the
// cache's lock and then killed with -9.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/common/files.h"
#include "core/embed/cache.h"
#include "embedapt/embedder.h"
#include "tests/support/fake_embeddings.h"
#include "tests/support/http_server.h"

extern char** environ;

using embedapt::Embedder;
using embedapt::EmbedderOptions;
using embedapt::EmbeddingCache;
using embedapt::EmbedSide;
using embedapt::make_embedder;
using embedapt::Status;
using embedapt::testing::fake_embeddings_reply;
using embedapt::testing::fake_vector;
using embedapt::testing::HttpExchange;
using embedapt::testing::HttpTestServer;

namespace fs = std::filesystem;

namespace {

constexpr int kDim = 8;
const std::string kHolderIdentity = "holder:kill-9";

// A fake model server that counts the texts it embeds.
struct CountingServer {
  std::atomic<int> texts{0};
  HttpTestServer server{[this](const HttpExchange& request) {
    texts += static_cast<int>(nlohmann::json::parse(request.body)["input"].size());
    return fake_embeddings_reply(request, kDim);
  }};
};

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(EMBEDAPT_BINARY_DIR) / "test_cache" / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

EmbedderOptions options_for(const HttpTestServer& server, const fs::path& cache_dir) {
  EmbedderOptions options;
  options.api_base_url = server.base_url() + "/v1";
  options.api_key = "sk-cache-test";
  options.cache_dir = cache_dir.string();
  return options;
}

std::vector<float> expected_rows(const std::vector<std::string>& texts) {
  std::vector<float> rows;
  for (const auto& t : texts) {
    std::vector<float> v = fake_vector(t, kDim);
    rows.insert(rows.end(), v.begin(), v.end());
  }
  return rows;
}

std::vector<float> embed(Embedder& embedder, const std::vector<std::string>& texts, EmbedSide side) {
  std::vector<float> out;
  Status s = embedder.embed(texts, side, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// Runs `body` with stderr sent to a file; returns what was written.
template <typename Body>
std::string capture_stderr(Body body) {
  fs::path path = fs::path(EMBEDAPT_BINARY_DIR) / "test_cache" / "stderr.txt";
  std::fflush(stderr);
  int saved = ::dup(STDERR_FILENO);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string text;
  REQUIRE(embedapt::read_file(path.string(), &text).ok());
  return text;
}

}  // namespace

TEST_CASE("cache: a second run reaches the model zero times, across reopen", "[cache]") {
  CountingServer model;
  fs::path dir = fresh_dir("second_run");
  std::vector<std::string> texts = {"apple", "banana", "apple", "cherry", "banana", "durian"};
  std::vector<std::string> distinct = {"apple", "banana", "cherry", "durian"};
  {
    std::unique_ptr<Embedder> embedder;
    REQUIRE(make_embedder("openai:fake-model", options_for(model.server, dir), &embedder).ok());
    CHECK(embedder->dim() == kDim);
    CHECK(model.texts == 1);  // the dimension probe
    CHECK(embed(*embedder, texts, EmbedSide::kDocument) == expected_rows(texts));
    CHECK(model.texts == 1 + 4);  // each distinct text once
  }
  int requests = model.server.requests();
  {
    std::unique_ptr<Embedder> embedder;  // reopens the cache from disk
    REQUIRE(make_embedder("openai:fake-model", options_for(model.server, dir), &embedder).ok());
    CHECK(embedder->dim() == kDim);  // recorded in the cache: no probe
    CHECK(embed(*embedder, texts, EmbedSide::kDocument) == expected_rows(texts));
    CHECK(embed(*embedder, distinct, EmbedSide::kDocument) == expected_rows(distinct));
  }
  CHECK(model.server.requests() == requests);
}

TEST_CASE("cache: another identity, side or text is a miss", "[cache]") {
  CountingServer model;
  fs::path dir = fresh_dir("identity");
  std::unique_ptr<Embedder> first;
  REQUIRE(make_embedder("openai:model-a", options_for(model.server, dir), &first).ok());
  embed(*first, {"shared text"}, EmbedSide::kDocument);
  CHECK(model.texts == 2);

  std::unique_ptr<Embedder> second;  // shares the open cache in this process
  REQUIRE(make_embedder("openai:model-b", options_for(model.server, dir), &second).ok());
  CHECK(second->identity() != first->identity());
  embed(*second, {"shared text"}, EmbedSide::kDocument);
  CHECK(model.texts == 4);  // model-b's probe and its own miss
  embed(*first, {"shared text"}, EmbedSide::kQuery);
  CHECK(model.texts == 5);
  embed(*first, {"shared text", "new text"}, EmbedSide::kDocument);
  CHECK(model.texts == 6);
}

TEST_CASE("cache: use_cache=false reaches the model every time", "[cache]") {
  CountingServer model;
  fs::path dir = fresh_dir("disabled");
  EmbedderOptions options = options_for(model.server, dir);
  options.use_cache = false;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(make_embedder("openai:fake-model", options, &embedder).ok());
  embed(*embedder, {"x", "x"}, EmbedSide::kQuery);
  embed(*embedder, {"x"}, EmbedSide::kQuery);
  CHECK(model.texts == 1 + 2 + 1);
  CHECK_FALSE(fs::exists(dir));
}

// Not run on its own: the second process of the next test. It stores a
// vector in the cache named by $EMBEDAPT_TEST_HOLD_CACHE, says so, and holds
// the cache open until it is killed.
TEST_CASE("cache lock holder (a helper process)", "[.cache_holder]") {
  const char* dir = std::getenv("EMBEDAPT_TEST_HOLD_CACHE");
  REQUIRE(dir != nullptr);
  std::shared_ptr<EmbeddingCache> cache;
  REQUIRE(EmbeddingCache::open(dir, &cache).ok());
  REQUIRE(
      cache->store(kHolderIdentity, EmbedSide::kDocument, {"survivor"}, kDim, fake_vector("survivor", kDim))
          .ok());
  std::ofstream(std::string(dir) + ".ready") << "ready\n";
  std::this_thread::sleep_for(std::chrono::minutes(5));
}

TEST_CASE("cache: another process's lock means uncached with a warning; kill -9 loses nothing", "[cache]") {
  fs::path dir = fresh_dir("locked");
  fs::path ready = dir.string() + ".ready";
  fs::remove(ready);
  std::string self = fs::read_symlink("/proc/self/exe").string();
  std::string env_entry = "EMBEDAPT_TEST_HOLD_CACHE=" + dir.string();
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(env_entry.data());
  env.push_back(nullptr);
  const char* argv[] = {self.c_str(), "cache lock holder (a helper process)", nullptr};
  pid_t holder;
  REQUIRE(posix_spawn(&holder, self.c_str(), nullptr, nullptr, const_cast<char**>(argv), env.data()) == 0);
  for (int i = 0; i < 300 && !fs::exists(ready); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(ready));

  CountingServer model;
  std::string warnings = capture_stderr([&] {
    std::unique_ptr<Embedder> embedder;
    REQUIRE(make_embedder("openai:fake-model", options_for(model.server, dir), &embedder).ok());
    CHECK(embed(*embedder, {"a", "b"}, EmbedSide::kQuery) == expected_rows({"a", "b"}));
    embed(*embedder, {"a", "b"}, EmbedSide::kQuery);
  });
  CHECK(model.texts == 1 + 2 + 2);  // nothing was cached
  CHECK(warnings.find("held open for writing by another process") != std::string::npos);
  CHECK(warnings.find("running without the embedding cache") != std::string::npos);

  REQUIRE(::kill(holder, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(holder, &status, 0) == holder);
  CHECK(WIFSIGNALED(status));

  std::shared_ptr<EmbeddingCache> cache;
  REQUIRE(EmbeddingCache::open(dir.string(), &cache).ok());
  std::vector<float> rows;
  std::vector<bool> found;
  REQUIRE(cache->lookup(kHolderIdentity, EmbedSide::kDocument, {"survivor"}, kDim, &rows, &found).ok());
  CHECK(found[0]);
  CHECK(rows == fake_vector("survivor", kDim));
  CHECK(cache->recorded_dim(kHolderIdentity) == kDim);
}

TEST_CASE("cache: an open racing the last handle's close waits for it, never Busy", "[cache]") {
  // One thread drops its handle (closing RocksDB) while another opens the
  // same directory: the open must wait for the close, not trip on the lock
  // the closing handle still holds.
  fs::path dir = fresh_dir("open_while_closing");
  std::atomic<int> busy{0};
  auto churn = [&] {
    for (int i = 0; i < 200; ++i) {
      std::shared_ptr<EmbeddingCache> cache;
      Status s = EmbeddingCache::open(dir.string(), &cache);
      if (!s.ok()) ++busy;
    }
  };
  std::thread other(churn);
  churn();
  other.join();
  CHECK(busy == 0);
}
