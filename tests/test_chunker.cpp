// The sentence-aware chunker: packing, overlap, pages, stable ids, and chunk
// counts on the shared 10-K PDFs with the default model's tokenizer.
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/embed/tokenizer.h"
#include "core/generate/chunker.h"
#include "core/generate/loader.h"

using namespace embedapt;

namespace {

// One token per white-space separated word: easy to reason about in tests.
size_t count_words(std::string_view text) {
  std::istringstream in{std::string(text)};
  size_t n = 0;
  for (std::string word; in >> word;) ++n;
  return n;
}

Document make_document(const std::string& name, std::vector<std::string> pages) {
  Document doc{"/tmp/" + name, name, {}};
  for (size_t i = 0; i < pages.size(); ++i) doc.pages.push_back({static_cast<int>(i + 1), pages[i]});
  return doc;
}

// "Sentence number k has six words." for k in [first, last].
std::string sentences(int first, int last) {
  std::string text;
  for (int k = first; k <= last; ++k) text += "Sentence number " + std::to_string(k) + " has six words. ";
  return text;
}

}  // namespace

TEST_CASE("chunks pack whole sentences up to the size and overlap by whole sentences", "[chunker]") {
  Document doc = make_document("a.txt", {sentences(1, 40)});
  std::vector<Chunk> chunks;
  chunk_document(doc, {30, 12}, count_words, &chunks);

  REQUIRE(chunks.size() > 1);
  for (const Chunk& chunk : chunks) {
    CHECK(count_words(chunk.text) <= 30);
    CHECK(chunk.text.rfind("Sentence number ", 0) == 0);  // starts at a sentence
    CHECK(chunk.text.back() == '.');                      // ends at one
  }
  // 30 tokens hold five six-word sentences; the next chunk repeats the last two (12 tokens).
  CHECK(chunks[0].text ==
        "Sentence number 1 has six words. Sentence number 2 has six words. "
        "Sentence number 3 has six words. Sentence number 4 has six words. "
        "Sentence number 5 has six words.");
  CHECK(chunks[1].text.rfind("Sentence number 4 has six words. Sentence number 5", 0) == 0);
  // Every sentence is in some chunk.
  for (int k = 1; k <= 40; ++k) {
    std::string sentence = "Sentence number " + std::to_string(k) + " has";
    bool found = false;
    for (const Chunk& chunk : chunks) found = found || chunk.text.find(sentence) != std::string::npos;
    CHECK(found);
  }
}

TEST_CASE("abbreviations and decimals do not end sentences", "[chunker]") {
  Document doc = make_document(
      "a.txt", {"Uber Technologies, Inc. is in the U.S. and pays 1.5 times more. Next one here."});
  std::vector<Chunk> chunks;
  chunk_document(doc, {14, 0}, count_words, &chunks);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].text == "Uber Technologies, Inc. is in the U.S. and pays 1.5 times more.");
  CHECK(chunks[1].text == "Next one here.");
}

TEST_CASE("text without sentence ends is cut at lines, then words, to fit", "[chunker]") {
  std::string table;
  for (int row = 0; row < 50; ++row)
    table += "row " + std::to_string(row) + " value " + std::to_string(row * 7) + "\n";
  std::string words;
  for (int i = 0; i < 100; ++i) words += "word" + std::to_string(i) + " ";
  Document doc = make_document("t.txt", {table, words});
  std::vector<Chunk> chunks;
  chunk_document(doc, {25, 5}, count_words, &chunks);
  REQUIRE(!chunks.empty());
  for (const Chunk& chunk : chunks) CHECK(count_words(chunk.text) <= 25);
  CHECK(chunks.back().text.find("word99") != std::string::npos);
}

TEST_CASE("chunks keep their page and never span pages; blank pages give none", "[chunker]") {
  Document doc = make_document("p.pdf", {sentences(1, 3), "   \n  ", sentences(4, 6)});
  std::vector<Chunk> chunks;
  chunk_document(doc, {1000, 100}, count_words, &chunks);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].document == "p.pdf");
  CHECK(chunks[0].page == 1);
  CHECK(chunks[0].text ==
        "Sentence number 1 has six words. Sentence number 2 has six words. "
        "Sentence number 3 has six words.");
  CHECK(chunks[1].page == 3);
  CHECK(chunks[1].text.rfind("Sentence number 4", 0) == 0);

  chunks.clear();
  chunk_document(make_document("empty.txt", {" \n\n "}), {18, 0}, count_words, &chunks);
  CHECK(chunks.empty());
}

TEST_CASE("chunk ids are stable across runs and differ across documents and positions", "[chunker]") {
  std::vector<Chunk> first, again, other;
  chunk_document(make_document("dir/a.txt", {sentences(1, 30)}), {30, 6}, count_words, &first);
  chunk_document(make_document("dir/a.txt", {sentences(1, 30)}), {30, 6}, count_words, &again);
  chunk_document(make_document("dir/b.txt", {sentences(1, 30)}), {30, 6}, count_words, &other);
  REQUIRE(first.size() == again.size());
  std::set<std::string> ids;
  for (size_t i = 0; i < first.size(); ++i) {
    CHECK(first[i].id == again[i].id);
    CHECK(first[i].id != other[i].id);
    CHECK(first[i].id.size() == 16);
    ids.insert(first[i].id);
  }
  CHECK(ids.size() == first.size());
}

TEST_CASE("options are validated", "[chunker]") {
  CHECK(validate({1024, 200}).ok());
  CHECK(validate({0, 0}).code() == Code::kInvalidArgument);
  CHECK(validate({100, 100}).code() == Code::kInvalidArgument);
}

TEST_CASE("the shared 10-K PDFs give chunk counts comparable to LlamaIndex's", "[chunker][pdf]") {
  const std::string data = EMBEDAPT_SOURCE_DIR "/../shared/data/10k/";
  const std::string vocab = EMBEDAPT_SOURCE_DIR "/models/all-MiniLM-L6-v2/vocab.txt";
  if (!std::filesystem::exists(data + "uber_2021.pdf") || !std::filesystem::exists(vocab)) {
    WARN("skipped: needs " << data << " and the default model at " << vocab);
    return;
  }
  std::unique_ptr<WordPieceTokenizer> tokenizer;
  REQUIRE(WordPieceTokenizer::load(vocab, {}, &tokenizer).ok());
  auto count_tokens = [&tokenizer](std::string_view text) { return tokenizer->count_tokens(text); };

  // LlamaIndex's SentenceSplitter with its defaults made 410 Uber and 344 Lyft chunks.
  for (const auto& [file, llamaindex_chunks] :
       {std::pair<std::string, size_t>{"uber_2021.pdf", 410}, {"lyft_2021.pdf", 344}}) {
    Document doc;
    REQUIRE(load_document(data + file, file, &doc).ok());
    std::vector<Chunk> chunks;
    chunk_document(doc, ChunkerOptions{}, count_tokens, &chunks);
    size_t largest = 0;
    for (const Chunk& chunk : chunks) largest = std::max(largest, count_tokens(chunk.text));
    INFO(file << ": " << doc.pages.size() << " pages, " << chunks.size() << " chunks (LlamaIndex "
              << llamaindex_chunks << "), largest " << largest << " tokens");
    WARN(file << ": " << doc.pages.size() << " pages, " << chunks.size() << " chunks (LlamaIndex "
              << llamaindex_chunks << "), largest " << largest << " tokens");
    CHECK(largest <= ChunkerOptions{}.chunk_size);
    CHECK(chunks.size() >= llamaindex_chunks * 3 / 4);
    CHECK(chunks.size() <= llamaindex_chunks * 5 / 4);
  }
}
