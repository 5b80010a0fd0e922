// Loaders on the fixtures in tests/data/generate: PDF pages, text, Markdown,
// HTML, folders, and files that cannot be read.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/common/utf8.h"
#include "core/generate/loader.h"
#include "core/generate/markup.h"
#include "tests/support/temp_dir.h"

using namespace embedapt;
using embedapt::testing::TempDir;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = EMBEDAPT_SOURCE_DIR "/tests/data/generate/";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a PDF gives one page of text per page, numbered from 1", "[loaders]") {
  Document doc;
  REQUIRE(load_document(kFixtures + "two_pages.pdf", "two_pages.pdf", &doc).ok());
  REQUIRE(doc.pages.size() == 2);
  CHECK(doc.pages[0].number == 1);
  CHECK(doc.pages[1].number == 2);
  CHECK(contains(doc.pages[0].text, "harbour opened in 1901"));
  CHECK(contains(doc.pages[1].text, "lighthouse is 40 metres tall"));
  CHECK(!contains(doc.pages[0].text, "lighthouse"));
}

TEST_CASE("text, Markdown and HTML give their visible text", "[loaders]") {
  Document txt, md, html;
  REQUIRE(load_document(kFixtures + "notes.txt", "notes.txt", &txt).ok());
  REQUIRE(txt.pages.size() == 1);
  CHECK(contains(txt.pages[0].text, "The river freezes every January."));

  REQUIRE(load_document(kFixtures + "guide.md", "guide.md", &md).ok());
  const std::string& m = md.pages[0].text;
  CHECK(m.rfind("Ferry timetable\n", 0) == 0);
  CHECK(contains(m, "The first ferry leaves at 6:15 and the last at 23:40."));
  CHECK(contains(m, "Tickets are sold on board."));
  CHECK(contains(m, "See the operator's site for holiday changes."));
  CHECK(contains(m, "A map of the route"));
  CHECK(!contains(m, "https://"));
  CHECK(!contains(m, "```"));

  REQUIRE(load_document(kFixtures + "page.html", "page.html", &html).ok());
  const std::string& h = html.pages[0].text;
  CHECK(h.rfind("Bakery & Caf\xC3\xA9 hours", 0) == 0);
  CHECK(contains(h, "Open from 7 to 19 \xE2\x80\x94 closed on Mondays."));
  CHECK(contains(h, "Bread!\nCakes & tarts"));
  CHECK(contains(h, "Line one\nLine two"));
  for (const char* hidden : {"Hidden title", "color", "secret", "comment", "<", "&"}) {
    if (std::string(hidden) == "&") continue;  // "&" legitimately appears decoded
    CHECK(!contains(h, hidden));
  }
}

TEST_CASE("html_to_text survives malformed markup", "[loaders]") {
  CHECK(html_to_text("a < b and <b>bold</b> &unknown; &#99999999; <p>cut") ==
        "a < b and bold &unknown; \xEF\xBF\xBD\n\ncut");
  CHECK(html_to_text("<script>never closed").empty());
  CHECK(html_to_text("text <unterminated") == "text");
  CHECK(to_valid_utf8("ok \xFF\xC3 end") == "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  CHECK(to_valid_utf8("caf\xC3\xA9") == "caf\xC3\xA9");
}

TEST_CASE("a folder is walked recursively in sorted order; unreadable files are skipped by name",
          "[loaders]") {
  TempDir dir("folder");
  fs::create_directories(dir.path / "b_sub");
  fs::copy_file(kFixtures + "notes.txt", dir.path / "b_sub" / "notes.txt");
  fs::copy_file(kFixtures + "page.html", dir.path / "a_page.html");
  fs::copy_file(kFixtures + "broken.pdf", dir.path / "c_broken.pdf");
  std::ofstream(dir.path / "ignored.csv") << "a,b\n";

  std::vector<Document> docs;
  std::vector<Status> skipped;
  std::string missing = kFixtures + "no_such_file.txt";
  REQUIRE(load_documents({dir.path.string(), kFixtures + "two_pages.pdf", missing}, &docs, &skipped).ok());
  REQUIRE(docs.size() == 3);
  CHECK(docs[0].name == "a_page.html");
  CHECK(docs[1].name == "b_sub/notes.txt");
  CHECK(docs[2].name == "two_pages.pdf");
  REQUIRE(skipped.size() == 2);
  CHECK(skipped[0].code() == Code::kCorruption);
  CHECK(contains(skipped[0].message(), "c_broken.pdf"));
  CHECK(skipped[1].code() == Code::kIOError);
  CHECK(contains(skipped[1].message(), missing));
}

TEST_CASE("nothing readable is an error; an unsupported file is named", "[loaders]") {
  std::vector<Document> docs;
  std::vector<Status> skipped;
  Status s = load_documents({kFixtures + "broken.pdf", kFixtures + "llm_artifacts.csv"}, &docs, &skipped);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(contains(s.message(), "no readable document"));
  REQUIRE(skipped.size() == 2);
  CHECK(skipped[1].code() == Code::kNotSupported);
  CHECK(contains(skipped[1].message(), "llm_artifacts.csv"));
}

TEST_CASE("two inputs with the same name are refused, not merged", "[loaders]") {
  TempDir dir("same_name");
  fs::create_directories(dir.path / "x");
  fs::copy_file(kFixtures + "notes.txt", dir.path / "x" / "notes.txt");
  std::vector<Document> docs;
  std::vector<Status> skipped;
  Status s =
      load_documents({kFixtures + "notes.txt", (dir.path / "x" / "notes.txt").string()}, &docs, &skipped);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(contains(s.message(), "notes.txt"));
}

TEST_CASE("a huge Markdown line is kept as text, not fed to the regexes", "[loaders]") {
  std::string huge(1 << 20, '*');
  std::string text = markdown_to_text("# Title\n" + huge + "\n**bold** end\n");
  CHECK(text == "Title\n" + huge + "\nbold end");
}

TEST_CASE("text quoted in a message is one bounded line of valid UTF-8", "[utf8]") {
  CHECK(quotable("plain") == "plain");
  CHECK(quotable("two\nlines\r\x1b]0;title\x07") == "two lines  ]0;title ");
  CHECK(quotable("bad \xff byte") == "bad \xEF\xBF\xBD byte");  // U+FFFD
  CHECK(quotable("caf\xC3\xA9 au lait", 4) == "caf...");        // never half of the two-byte e-acute
  CHECK(quotable(std::string(1000, 'a'), 10) == std::string(10, 'a') + "...");
  CHECK(quotable("\xC2\x9B") == " ");  // C1 controls too (CSI)
}
