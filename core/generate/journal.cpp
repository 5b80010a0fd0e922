#include "core/generate/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/common/files.h"
#include "core/common/json.h"
#include "core/common/utf8.h"
#include "core/generate/chat.h"

namespace embedapt {

namespace {

using nlohmann::json;

constexpr char kFormat[] = "embedapt-generate-journal/1";

Status write_all(int fd, const std::string& path, const std::string& data) {
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(path + ": write failed: " + std::strerror(errno));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return Status::IOError(path + ": fsync failed: " + std::strerror(errno));
  return Status::OK();
}

// The most of one argument's value a message quotes.
constexpr size_t kMaxQuotedValue = 100;

std::string quote(const json& value) {
  return quotable(value.dump(-1, ' ', false, json::error_handler_t::replace), kMaxQuotedValue);
}

// Whether `arguments` has the shape generate writes: an object of plain
// values, so that comparing and quoting them stays shallow and short.
bool plain_object(const json& arguments) {
  if (!arguments.is_object()) return false;
  return std::all_of(arguments.begin(), arguments.end(), [](const json& v) { return v.is_primitive(); });
}

// "model: \"a\" in the journal, \"b\" now; ..." for each differing key.
std::string describe_difference(const json& journal, const json& now) {
  std::string out;
  json keys = json::object();
  for (const auto& [key, value] : journal.items()) keys[key] = true;
  for (const auto& [key, value] : now.items()) keys[key] = true;
  for (const auto& [key, unused] : keys.items()) {
    json a = journal.value(key, json()), b = now.value(key, json());
    if (a == b) continue;
    if (!out.empty()) out += "; ";
    out += key + ": " + quote(a) + " in the journal, " + quote(b) + " now";
  }
  return out;
}

// Reads the header and entries of an existing journal; *valid_size is the
// length of its complete lines.
Status parse_journal(const std::string& path, const std::string& content, const json& arguments,
                     std::vector<JournalEntry>* entries, size_t* valid_size) {
  size_t end_of_lines = content.rfind('\n');
  *valid_size = end_of_lines == std::string::npos ? 0 : end_of_lines + 1;
  size_t start = 0;
  int line_number = 0;
  while (start < *valid_size) {
    size_t end = content.find('\n', start);
    std::string line = content.substr(start, end - start);
    start = end + 1;
    ++line_number;
    std::string where = path + ":" + std::to_string(line_number);
    // The file may be anything by now: parsed with a bound on its depth, as
    // comparing and quoting what was built recurse once per level.
    json record;
    const bool parsed = parse_json(line, where, &record).ok();
    if (line_number == 1) {
      if (!parsed || !record.is_object() || record["format"] != kFormat ||
          !plain_object(record.value("arguments", json()))) {
        return Status::Corruption(where + ": not an embedapt generate journal");
      }
      if (record["arguments"] != arguments) {
        return Status::FailedPrecondition(path + ": holds answers from a run with other arguments (" +
                                          describe_difference(record["arguments"], arguments) +
                                          "); rerun with the original arguments, or delete the journal to "
                                          "start over");
      }
      continue;
    }
    if (!parsed || !record.is_object() || !record["chunk"].is_string() || !record["reply"].is_string() ||
        !record["input_tokens"].is_number_integer() || !record["output_tokens"].is_number_integer()) {
      return Status::Corruption(where + ": not a journal entry");
    }
    JournalEntry entry;
    entry.chunk_id = record["chunk"].get<std::string>();
    entry.reply = record["reply"].get<std::string>();
    entry.input_tokens = record["input_tokens"].get<int64_t>();
    entry.output_tokens = record["output_tokens"].get<int64_t>();
    // What chat_complete reports (a count it could not take is 0): an entry
    // past it would overflow the run's sums (2^64 - 1 read back as -1).
    for (const auto& count : {record["input_tokens"], record["output_tokens"]}) {
      if (!count.is_number_unsigned() || count.get<uint64_t>() > uint64_t(kMaxReplyTokens)) {
        return Status::Corruption(where + ": not a journal entry (a token count out of range)");
      }
    }
    entries->push_back(std::move(entry));
  }
  if (line_number == 0) *valid_size = 0;  // no complete header: start afresh
  return Status::OK();
}

}  // namespace

Status Journal::open(const std::string& path, const std::string& arguments,
                     std::vector<JournalEntry>* entries, std::unique_ptr<Journal>* out) {
  json parsed_arguments = json::parse(arguments, nullptr, /*allow_exceptions=*/false);
  if (!parsed_arguments.is_object())
    return Status::InvalidArgument("journal arguments are not a JSON object");
  entries->clear();
  size_t valid_size = 0;
  if (::access(path.c_str(), F_OK) == 0) {
    std::string content;
    EMBEDAPT_RETURN_IF_ERROR(read_file(path, &content));
    EMBEDAPT_RETURN_IF_ERROR(parse_journal(path, content, parsed_arguments, entries, &valid_size));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  // Drop a torn last line; appends then start on a line of their own.
  if (::ftruncate(fd, static_cast<off_t>(valid_size)) != 0 ||
      ::lseek(fd, static_cast<off_t>(valid_size), SEEK_SET) < 0) {
    Status s = Status::IOError(path + ": cannot truncate: " + std::strerror(errno));
    ::close(fd);
    return s;
  }
  if (valid_size == 0) {
    json header = {{"format", kFormat}, {"arguments", parsed_arguments}};
    Status s = write_all(fd, path, header.dump() + "\n");
    if (!s.ok()) {
      ::close(fd);
      return s;
    }
  }
  out->reset(new Journal(path, fd));
  return Status::OK();
}

Journal::~Journal() { ::close(fd_); }

Status Journal::append(const JournalEntry& entry) {
  json record = {{"chunk", entry.chunk_id},
                 {"reply", entry.reply},
                 {"input_tokens", entry.input_tokens},
                 {"output_tokens", entry.output_tokens}};
  std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  return write_all(fd_, path_, line);
}

}  // namespace embedapt
