// WordPieceTokenizer against the Hugging Face tokenizer: the golden fixture
// holds the ids sentence-transformers feeds all-MiniLM-L6-v2 for ~50 texts
// chosen to hit every rule (accents, CJK, punctuation, controls, emoji, long).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/common/files.h"
#include "core/embed/tokenizer.h"

namespace embedapt {
namespace {

const std::string kModelDir = EMBEDAPT_SOURCE_DIR "/models/all-MiniLM-L6-v2";
const std::string kGoldenDir = EMBEDAPT_SOURCE_DIR "/tests/data/golden";

std::unique_ptr<WordPieceTokenizer> load_minilm() {
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  Status s = WordPieceTokenizer::load(kModelDir + "/vocab.txt", {}, &tokenizer);
  if (!s.ok()) FAIL(s.ToString() << " (run `make models`)");
  return tokenizer;
}

// A vocabulary file of the given tokens in a fresh temporary directory.
std::string write_vocab(const std::string& name, const std::vector<std::string>& tokens) {
  auto dir = std::filesystem::temp_directory_path() / ("embedapt_test_tokenizer_" + name);
  std::filesystem::create_directories(dir);
  std::string path = (dir / "vocab.txt").string();
  std::ofstream out(path);
  for (const auto& t : tokens) out << t << "\n";
  return path;
}

TEST_CASE("tokenizer reproduces the Hugging Face ids of every golden text") {
  auto tokenizer = load_minilm();
  std::string json;
  REQUIRE(read_file(kGoldenDir + "/golden.json", &json).ok());
  auto golden = nlohmann::json::parse(json);
  size_t max_length = golden["max_seq_length"];
  REQUIRE(golden["texts"].size() >= 40);
  for (const auto& record : golden["texts"]) {
    std::string text = record["text"];
    auto expected = record["ids"].get<std::vector<int32_t>>();
    INFO("text: " << text);
    CHECK(tokenizer->encode(text, max_length) == expected);
  }
}

TEST_CASE("tokenizer frames empty and blank text as [CLS] [SEP]") {
  auto tokenizer = load_minilm();
  const std::vector<int32_t> cls_sep = {101, 102};
  CHECK(tokenizer->encode("", 256) == cls_sep);
  CHECK(tokenizer->encode(" \t\r\n\u3000", 256) == cls_sep);
  CHECK(tokenizer->count_tokens("") == 0);
}

TEST_CASE("tokenizer truncates to max_length including [CLS] and [SEP]") {
  auto tokenizer = load_minilm();
  std::string text = "one two three four five six";
  auto full = tokenizer->encode(text, 512);
  REQUIRE(full.size() == 8);
  auto cut = tokenizer->encode(text, 5);
  REQUIRE(cut.size() == 5);
  CHECK(cut.front() == 101);
  CHECK(cut.back() == 102);
  CHECK(std::vector<int32_t>(cut.begin() + 1, cut.end() - 1) ==
        std::vector<int32_t>(full.begin() + 1, full.begin() + 4));
  CHECK(tokenizer->encode(text, 0).size() == 2);  // the frame survives any limit
}

TEST_CASE("tokenizer replaces invalid UTF-8 instead of failing") {
  auto tokenizer = load_minilm();
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  std::string bad = "caf\x80 ok \xC3 x \xC0\xAF y \xED\xA0\x80 z";
  CHECK(tokenizer->tokenize(bad) == tokenizer->tokenize("caf ok x y z"));
}

TEST_CASE("tokenizer turns a word over 100 characters into one [UNK]") {
  auto tokenizer = load_minilm();
  CHECK(tokenizer->tokenize(std::string(100, 'a')).size() > 1);
  CHECK(tokenizer->tokenize(std::string(101, 'a')) == std::vector<int32_t>{100});
}

TEST_CASE("tokenizer options control casing, accents and CJK splitting") {
  std::string path = write_vocab("options", {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "cafe", "café", "Café", "中",
                                             "文", "中文", "!", "un", "##able"});
  std::unique_ptr<WordPieceTokenizer> t;
  REQUIRE(WordPieceTokenizer::load(path, {true, true, true}, &t).ok());
  CHECK(t->tokenize("CAFÉ!") == std::vector<int32_t>{4, 10});
  CHECK(t->tokenize("中文") == std::vector<int32_t>{7, 8});
  CHECK(t->tokenize("Unable") == std::vector<int32_t>{11, 12});
  CHECK(t->tokenize("unables") == std::vector<int32_t>{1});  // no piece for "s": the whole word

  REQUIRE(WordPieceTokenizer::load(path, {true, false, true}, &t).ok());
  CHECK(t->tokenize("CAFÉ") == std::vector<int32_t>{5});

  REQUIRE(WordPieceTokenizer::load(path, {false, false, false}, &t).ok());
  CHECK(t->tokenize("Café") == std::vector<int32_t>{6});
  CHECK(t->tokenize("中文") == std::vector<int32_t>{9});
  CHECK(t->pad_id() == 0);
}

TEST_CASE("tokenizer load names the file and what is wrong") {
  std::unique_ptr<WordPieceTokenizer> t;
  Status missing = WordPieceTokenizer::load("/nonexistent/vocab.txt", {}, &t);
  CHECK(missing.code() == Code::kNotFound);
  CHECK(missing.message().find("/nonexistent/vocab.txt") != std::string::npos);

  std::string path = write_vocab("no_cls", {"[PAD]", "[UNK]", "[SEP]", "word"});
  Status no_cls = WordPieceTokenizer::load(path, {}, &t);
  CHECK(no_cls.code() == Code::kCorruption);
  CHECK(no_cls.message().find("[CLS]") != std::string::npos);
  CHECK(no_cls.message().find(path) != std::string::npos);
}

}  // namespace
}  // namespace embedapt
