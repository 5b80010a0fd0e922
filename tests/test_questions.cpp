// The prompt and the reply parser: only real questions survive, checked on
// messy replies and on the artifacts in the shared 10-K datasets, whose
// "questions" are the raw lines of Mistral-7B's replies.
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <map>

#include "core/common/files.h"
#include "core/eval/dataset.h"
#include "core/generate/questions.h"

using namespace embedapt;

namespace {

const std::string kFixtures = EMBEDAPT_SOURCE_DIR "/tests/data/generate/";

// What issue 5 asks of every kept question.
void check_clean(const std::string& q) {
  INFO(q);
  REQUIRE(!q.empty());
  CHECK(q.back() == '?');
  CHECK(!std::isdigit(static_cast<unsigned char>(q[0])));
  CHECK(std::string("-*•#>(").find(q[0]) == std::string::npos);
  CHECK(q.rfind("Question", 0) != 0);
  CHECK(q.rfind("Or,", 0) != 0);
  CHECK(q.rfind("Answer", 0) != 0);
  CHECK(q != "?");
}

}  // namespace

TEST_CASE("numbering, bullets, prefixes, quotes and emphasis are stripped", "[questions]") {
  std::string reply =
      "Sure! Here are two questions based on the context information:\n"
      "\n"
      "1. What was the company's revenue in 2021?\n"
      "2) **How many Drivers used the platform?**\n"
      "Question 3: Which city had the most trips?\n"
      "Q4: \"Why did the company sell its ATG business?\"\n"
      "- Where is the headquarters located?\n"
      "• What is a Monthly Active Platform Consumer?\n"
      "(Bonus) How many unique Trips were completed? Provide an example.\n"
      "Answer: $17.4 billion\n";
  std::vector<std::string> questions = parse_questions(reply, 10);
  CHECK(questions == std::vector<std::string>{
                         "What was the company's revenue in 2021?",
                         "How many Drivers used the platform?",
                         "Which city had the most trips?",
                         "Why did the company sell its ATG business?",
                         "Where is the headquarters located?",
                         "What is a Monthly Active Platform Consumer?",
                         "How many unique Trips were completed?",
                     });
  for (const std::string& q : questions) check_clean(q);
}

TEST_CASE("preambles, answers, fragments, options and duplicates are dropped", "[questions]") {
  std::string reply =
      "Here are 2 questions:\n"
      "Question 1:\n"
      "What risks does the company face from regulation?\n"
      "Or,\n"
      "Question 2:\n"
      "what risks does the company face from REGULATION ?\n"  // a duplicate, differently written
      "a) Sales and Marketing\n"
      "b) Research and Development\n"
      "Answer Key: a\n"
      "Why?\n"  // near-empty
      "Which expense category decreased as a percentage of revenue?\n";
  CHECK(parse_questions(reply, 10) == std::vector<std::string>{
                                          "What risks does the company face from regulation?",
                                          "Which expense category decreased as a percentage of revenue?",
                                      });
  CHECK(parse_questions(reply, 1).size() == 1);
  CHECK(parse_questions("", 2).empty());
  CHECK(parse_questions("No questions could be written for this text.", 2).empty());
}

TEST_CASE("the artifact lines quoted from the shared datasets are all dropped", "[questions]") {
  std::string artifacts;
  REQUIRE(read_file(kFixtures + "llm_artifacts.txt", &artifacts).ok());
  CHECK(parse_questions(artifacts, 100).empty());
  // Between real questions they do not disturb them.
  std::string reply = "What is Adjusted EBITDA?\n" + artifacts + "How is Gross Bookings defined?\n";
  CHECK(parse_questions(reply, 100) ==
        std::vector<std::string>{"What is Adjusted EBITDA?", "How is Gross Bookings defined?"});
}

TEST_CASE("on the shared datasets' replies, artifacts go and real questions stay", "[questions][shared]") {
  for (const char* name : {"train_dataset.json", "val_dataset.json"}) {
    std::string path = EMBEDAPT_SOURCE_DIR "/../shared/data/10k/" + std::string(name);
    if (!std::filesystem::exists(path)) {
      WARN("skipped: " << path << " is absent");
      continue;
    }
    QaDataset dataset;
    REQUIRE(read_llamaindex_json(path, &dataset).ok());
    // LlamaIndex kept each non-blank reply line as a query: regroup them per chunk.
    std::map<std::string, std::string> text_of;
    for (const TextEntry& q : dataset.queries) text_of[q.id] = q.text;
    std::map<std::string, std::string> replies;
    for (const Relevance& r : dataset.relevant_docs) replies[r.doc_ids[0]] += text_of[r.query_id] + "\n";

    size_t lines = dataset.queries.size(), kept = 0, plain_questions = 0, plain_kept = 0;
    for (const auto& [chunk, reply] : replies) {
      std::vector<std::string> questions = parse_questions(reply, 100);
      kept += questions.size();
      for (const std::string& q : questions) check_clean(q);
      // A line that already is a plain question must come through unchanged.
      size_t start = 0;
      while (start < reply.size()) {
        size_t end = reply.find('\n', start);
        std::string line = reply.substr(start, end - start);
        start = end + 1;
        if (line.size() > 20 && line.back() == '?' && std::isupper(static_cast<unsigned char>(line[0])) &&
            line.rfind("Question", 0) != 0 && line.find('?') == line.size() - 1) {
          ++plain_questions;
          plain_kept += std::count(questions.begin(), questions.end(), line) > 0;
        }
      }
    }
    WARN(name << ": " << lines << " reply lines, " << kept << " clean questions kept; " << plain_kept
              << " of " << plain_questions << " plain questions kept");
    CHECK(plain_kept == plain_questions);
    CHECK(kept < lines);            // the artifacts went
    CHECK(kept >= lines * 7 / 10);  // most lines were questions, possibly with a tail cut
  }
}

TEST_CASE("the prompt carries the chunk and the count", "[questions]") {
  std::string prompt = render_prompt(kDefaultQuestionPrompt, "The ferry leaves at six.", 3);
  CHECK(prompt.find("The ferry leaves at six.") != std::string::npos);
  CHECK(prompt.find("Write 3 questions") != std::string::npos);
  CHECK(prompt.find('{') == std::string::npos);
  CHECK(render_prompt("Ask {n} about: {chunk} ({n})", "X", 2) == "Ask 2 about: X (2)");
  CHECK(validate_prompt(kDefaultQuestionPrompt).ok());
  CHECK(validate_prompt("Ask {n} questions.").code() == Code::kInvalidArgument);

  // The documented prompt is the built-in one.
  std::string documented;
  REQUIRE(read_file(EMBEDAPT_SOURCE_DIR "/docs/prompts/questions.txt", &documented).ok());
  CHECK(documented == kDefaultQuestionPrompt);
}

TEST_CASE("huge lines neither crash the parser nor count as questions", "[questions]") {
  std::string huge(1 << 20, '*');
  huge += " What is this?";
  CHECK(parse_questions(huge + "\nWhat does the harbour record show?\n", 5) ==
        std::vector<std::string>{"What does the harbour record show?"});
}
