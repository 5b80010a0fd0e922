// The command: embedder against a real subprocess (a python3 script).
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/embed/command.h"

using embedapt::Code;
using embedapt::CommandOptions;
using embedapt::Embedder;
using embedapt::EmbedSide;
using embedapt::open_command_embedder;
using embedapt::Status;

namespace {

const std::string kScript = EMBEDAPT_SOURCE_DIR "/tests/data/fake_command_embedder.py";

CommandOptions fake(const std::string& flags = "") {
  CommandOptions options;
  options.command = "exec python3 " + kScript + " " + flags;
  return options;
}

std::vector<float> expected(const std::string& text, EmbedSide side) {
  int sum = 0;
  for (unsigned char c : text) sum += c;
  return {static_cast<float>(text.size()), side == EmbedSide::kQuery ? 1.0f : 0.0f,
          static_cast<float>(sum % 97), 1.0f};
}

// Whether `pid` has ended within a few seconds: gone, or a zombie its new
// parent has yet to reap (signal 0 still reaches a zombie).
bool ends(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t name_end = line.rfind(')');
    if (name_end != std::string::npos && line.compare(name_end, 3, ") Z") == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Writes `source` as child.py in the build directory's `name` and returns
// its path: a child a test writes for the behaviour it checks.
std::string child_script(const std::string& name, const std::string& source) {
  const std::string dir = EMBEDAPT_BINARY_DIR "/" + name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/child.py") << source;
  return dir + "/child.py";
}

pid_t read_pid(const std::string& path) {
  pid_t pid = 0;
  for (int i = 0; i < 500 && pid == 0; ++i) {
    std::ifstream in(path);
    if (!(in >> pid)) pid = 0;
    if (pid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pid;
}

}  // namespace

TEST_CASE("command embedder speaks JSON lines with a subprocess", "[command]") {
  CommandOptions options = fake();
  options.batch_size = 3;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(options, &embedder).ok());
  CHECK(embedder->dim() == 4);
  CHECK(embedder->identity() == "command:" + options.command);

  std::vector<std::string> texts = {"alpha", "Ünïcödé", "", "a much longer text about revenue", "z"};
  std::vector<float> query;
  std::vector<float> document;
  REQUIRE(embedder->embed(texts, EmbedSide::kQuery, &query).ok());
  REQUIRE(embedder->embed(texts, EmbedSide::kDocument, &document).ok());
  REQUIRE(query.size() == texts.size() * 4);
  for (size_t i = 0; i < texts.size(); ++i) {
    CHECK(std::vector<float>(query.begin() + 4 * i, query.begin() + 4 * i + 4) ==
          expected(texts[i], EmbedSide::kQuery));
    CHECK(std::vector<float>(document.begin() + 4 * i, document.begin() + 4 * i + 4) ==
          expected(texts[i], EmbedSide::kDocument));
  }
}

TEST_CASE("command embedder reports a child that exits, then restarts it", "[command]") {
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(fake("--exit-after 2"), &embedder).ok());  // the probe is request 1
  std::vector<float> out;
  REQUIRE(embedder->embed({"one"}, EmbedSide::kDocument, &out).ok());
  Status s = embedder->embed({"two"}, EmbedSide::kDocument, &out);
  CHECK(s.code() == Code::kIOError);
  CHECK(s.message().find("closed its output without answering (it exited with status 3)") !=
        std::string::npos);
  CHECK(out.size() == 4);  // nothing appended by the failed call
  REQUIRE(embedder->embed({"three"}, EmbedSide::kDocument, &out).ok());  // a fresh child
  CHECK(out.size() == 8);
}

TEST_CASE("command embedder rejects errors, garbage and wrong shapes", "[command]") {
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(fake("--error-on BAD --garbage-on JUNK --short-on SHORT"), &embedder).ok());
  std::vector<float> out;
  Status error = embedder->embed({"ok", "BAD"}, EmbedSide::kQuery, &out);
  CHECK(error.code() == Code::kIOError);
  CHECK(error.message().find("reported an error: cannot embed BAD") != std::string::npos);
  Status garbage = embedder->embed({"JUNK"}, EmbedSide::kQuery, &out);
  CHECK(garbage.code() == Code::kCorruption);
  CHECK(garbage.message().find("answered a line that is not JSON") != std::string::npos);
  CHECK(garbage.message().find(": this is not json") != std::string::npos);
  Status short_reply = embedder->embed({"a", "SHORT"}, EmbedSide::kQuery, &out);
  CHECK(short_reply.code() == Code::kCorruption);
  CHECK(short_reply.message().find("answered 1 embeddings for 2 texts") != std::string::npos);
  CHECK(out.empty());
  REQUIRE(embedder->embed({"fine"}, EmbedSide::kQuery, &out).ok());
}

TEST_CASE("command embedder fails clearly when the command does not run", "[command]") {
  CommandOptions options;
  options.command = "no-such-embedder-binary --serve 2>/dev/null";
  std::unique_ptr<Embedder> embedder;
  Status s = open_command_embedder(options, &embedder);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("command 'no-such-embedder-binary --serve 2>/dev/null'") != std::string::npos);
  CHECK(s.message().find("exited with status 127") != std::string::npos);
}

TEST_CASE("command embedder reaps its child, killing one that lingers", "[command]") {
  std::string pid_file = EMBEDAPT_BINARY_DIR "/command_child.pid";
  std::filesystem::remove(pid_file);
  CommandOptions options;
  // Ignores its closed stdin and keeps running: only a kill ends it.
  options.command = "echo $$ > " + pid_file + "; trap '' TERM; python3 " + kScript + "; exec sleep 600";
  {
    std::unique_ptr<Embedder> embedder;
    REQUIRE(open_command_embedder(options, &embedder).ok());
  }
  std::ifstream in(pid_file);
  pid_t pid = 0;
  REQUIRE(in >> pid);
  CHECK(::kill(pid, 0) == -1);  // a zombie would still accept signal 0
  CHECK(errno == ESRCH);
}

TEST_CASE("command embedder times out on a hung child, kills it and recovers", "[command]") {
  std::string hang = EMBEDAPT_BINARY_DIR "/command_hang.txt";
  std::ofstream(hang) << "STUCK";
  CommandOptions options = fake("--hang-file " + hang);  // sleeps 600 s on a request holding STUCK
  // Long enough for the child's start on a loaded machine (at 1 s, CI's open timed out at load 13).
  options.read_timeout_seconds = 5;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(options, &embedder).ok());
  std::vector<float> out;
  REQUIRE(embedder->embed({"fine"}, EmbedSide::kQuery, &out).ok());

  auto start = std::chrono::steady_clock::now();
  Status s = embedder->embed({"STUCK"}, EmbedSide::kQuery, &out);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(s.code() == Code::kIOError);
  CHECK(s.message().find("command '" + options.command + "' timed out after 5s waiting for its answer") !=
        std::string::npos);
  CHECK(waited >= 4.9);
  CHECK(waited < 15);  // killed at once, not after the exit grace or the child's 600 s
  CHECK(out.size() == 4);

  std::filesystem::remove(hang);
  REQUIRE(embedder->embed({"after"}, EmbedSide::kQuery, &out).ok());  // a fresh child
  CHECK(out.size() == 8);
}

TEST_CASE("command embedder times out on a child that never reads its input", "[command]") {
  CommandOptions options;
  options.command = "exec sleep 600";  // never reads: a large request fills the socket buffer
  options.known_dim = 4;               // no probe
  options.batch_size = 1;
  options.read_timeout_seconds = 0.5;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(options, &embedder).ok());
  std::vector<float> out;
  Status s = embedder->embed({std::string(8 << 20, 'x')}, EmbedSide::kDocument, &out);
  CHECK(s.code() == Code::kIOError);
  CHECK(s.message().find("timed out after 0.5s waiting for it to read its input") != std::string::npos);
  CHECK(out.empty());
}

TEST_CASE("command embedder refuses a reply line past its limit and numbers no float holds", "[command]") {
  CommandOptions options = fake("--flood-on FLOOD --huge-on HUGE");
  options.max_reply_bytes = 1 << 20;
  std::unique_ptr<Embedder> embedder;
  REQUIRE(open_command_embedder(options, &embedder).ok());
  std::vector<float> out;
  Status flood = embedder->embed({"FLOOD"}, EmbedSide::kQuery, &out);
  CHECK(flood.code() == Code::kCorruption);
  CHECK(flood.message().find("longer than the limit of 1048576 bytes") != std::string::npos);
  Status huge = embedder->embed({"fine", "HUGE"}, EmbedSide::kQuery, &out);
  CHECK(huge.code() == Code::kCorruption);
  CHECK(huge.message().find("non-finite") != std::string::npos);
  CHECK(out.empty());
  REQUIRE(embedder->embed({"fine"}, EmbedSide::kQuery, &out).ok());  // a fresh child
  CHECK(out == expected("fine", EmbedSide::kQuery));
}

TEST_CASE("command embedder quotes a child's reply bounded and on one line, however deep or long",
          "[command]") {
  auto one_line = [](const std::string& message) {
    return std::none_of(message.begin(), message.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  };
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  std::vector<float> out;
  // Parsed whole, these overflowed the stack in dump() (the error) or in the walk of the rows.
  for (const std::string& line : {"{\"error\": " + deep + "}", "{\"embeddings\": " + deep + "}"}) {
    Status s = embedapt::parse_command_reply(line, 1, 0, &out);
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message().find("nests deeper than 64 levels") != std::string::npos);
    CHECK(s.message().size() < 500);
  }
  Status shallow = embedapt::parse_command_reply("{\"error\": {\"code\": [5]}}", 1, 0, &out);
  CHECK(shallow.code() == Code::kIOError);
  CHECK(shallow.message() == "reported an error: {\"error\": {\"code\": [5]}}");

  // A megabyte of traceback, with newlines and a terminal escape, as a child's error string.
  std::string traceback;
  while (traceback.size() < (1 << 20)) traceback += "Traceback line\\n\\u001b[31m";
  Status long_error = embedapt::parse_command_reply("{\"error\": \"" + traceback + "\"}", 1, 0, &out);
  CHECK(long_error.code() == Code::kIOError);
  CHECK(long_error.message().rfind("reported an error: Traceback line  [31mTraceback line", 0) == 0);
  CHECK(long_error.message().size() < 500);
  CHECK(one_line(long_error.message()));
  Status garbage = embedapt::parse_command_reply(std::string(1 << 20, '\r'), 1, 0, &out);
  CHECK(garbage.message().size() < 500);
  CHECK(one_line(garbage.message()));
  CHECK(out.empty());

  // Through a real child, the whole path: a one-line message, the child ended.
  const std::string child =
      child_script("command_deep",
                   "import sys\n"
                   "for line in sys.stdin:\n"
                   "    sys.stdout.write('{\"error\":' + '[' * 200000 + ']' * 200000 + '}\\n')\n"
                   "    sys.stdout.flush()\n");
  CommandOptions options;
  options.command = "exec python3 " + child;
  std::unique_ptr<Embedder> embedder;
  Status s = open_command_embedder(options, &embedder);
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().rfind("command '" + options.command + "' answered a line that is not JSON", 0) == 0);
  CHECK(s.message().size() < 600);
}

TEST_CASE("command embedder ends what its command started, not just sh", "[command]") {
  const std::string pid_file = EMBEDAPT_BINARY_DIR "/command_grandchild.pid";
  // A program the command leaves running in the background: killed with sh
  // alone, it lived on with parent 1, holding the caller's stderr open.
  auto with_grandchild = [&](const std::string& flags) {
    std::filesystem::remove(pid_file);
    CommandOptions options;
    options.command = "sleep 300 & echo $! > " + pid_file + "; python3 " + kScript + " " + flags + "; true";
    return options;
  };

  SECTION("after a failure") {
    std::unique_ptr<Embedder> embedder;
    REQUIRE(open_command_embedder(with_grandchild("--garbage-on JUNK"), &embedder).ok());
    const pid_t grandchild = read_pid(pid_file);
    REQUIRE(grandchild > 0);
    std::vector<float> out;
    CHECK(embedder->embed({"JUNK"}, EmbedSide::kQuery, &out).code() == Code::kCorruption);
    CHECK(ends(grandchild));
    if (!ends(grandchild)) ::kill(grandchild, SIGKILL);
  }

  SECTION("after a timeout") {
    const std::string hang = EMBEDAPT_BINARY_DIR "/command_group_hang.txt";
    std::ofstream(hang) << "STUCK";
    CommandOptions options = with_grandchild("--hang-file " + hang);
    options.read_timeout_seconds = 5;
    std::unique_ptr<Embedder> embedder;
    REQUIRE(open_command_embedder(options, &embedder).ok());
    const pid_t grandchild = read_pid(pid_file);
    REQUIRE(grandchild > 0);
    std::vector<float> out;
    CHECK(embedder->embed({"STUCK"}, EmbedSide::kQuery, &out).code() == Code::kIOError);
    std::filesystem::remove(hang);
    CHECK(ends(grandchild));
    if (!ends(grandchild)) ::kill(grandchild, SIGKILL);
  }

  SECTION("when the embedder is closed") {
    auto embedder = std::make_unique<std::unique_ptr<Embedder>>();
    REQUIRE(open_command_embedder(with_grandchild(""), embedder.get()).ok());
    const pid_t grandchild = read_pid(pid_file);
    REQUIRE(grandchild > 0);
    embedder.reset();
    CHECK(ends(grandchild));
    if (!ends(grandchild)) ::kill(grandchild, SIGKILL);
  }
}

TEST_CASE("command embedder refuses replies no request asked for", "[command]") {
  // Answers the probe once, then every request twice: at once, or a moment later.
  const std::string child =
      child_script("command_extra_lines",
                   "import json, sys, time\n"
                   "served = 0\n"
                   "for line in sys.stdin:\n"
                   "    texts = json.loads(line)['texts']\n"
                   "    out = json.dumps({'embeddings': [[float(len(t)), 0.0] for t in texts]}) + '\\n'\n"
                   "    served += 1\n"
                   "    sys.stdout.write(out if served == 1 or sys.argv[1] == 'later' else out + out)\n"
                   "    sys.stdout.flush()\n"
                   "    if served > 1 and sys.argv[1] == 'later':\n"
                   "        time.sleep(0.5)\n"
                   "        sys.stdout.write(out)\n"
                   "        sys.stdout.flush()\n");
  CommandOptions options;
  std::unique_ptr<Embedder> embedder;
  std::vector<float> out;

  SECTION("in the same write") {
    options.command = "exec python3 " + child + " together";
    REQUIRE(open_command_embedder(options, &embedder).ok());
    // It used to return these rows, then "a"'s row again for "bbb", and so on.
    Status s = embedder->embed({"a"}, EmbedSide::kQuery, &out);
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message() ==
          "command '" + options.command +
              "' answered one request with more than one line (then: {\"embeddings\": [[1.0, 0.0]]}); "
              "a reply per request, one line each, is the protocol");
    CHECK(out.empty());
  }

  SECTION("after the reply was read") {
    options.command = "exec python3 " + child + " later";
    REQUIRE(open_command_embedder(options, &embedder).ok());
    REQUIRE(embedder->embed({"a"}, EmbedSide::kQuery, &out).ok());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    Status s = embedder->embed({"bbb"}, EmbedSide::kQuery, &out);
    CHECK(s.code() == Code::kCorruption);
    CHECK(s.message().find("wrote output no request asked for: {\"embeddings\": [[1.0, 0.0]]}") !=
          std::string::npos);
    CHECK(out == std::vector<float>{1, 0});
  }
}
