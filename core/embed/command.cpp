#include "core/embed/command.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/common/json.h"
#include "core/common/progress.h"
#include "core/common/utf8.h"

extern char** environ;

namespace embedapt {

namespace {

using nlohmann::json;

// How long a child may take to exit after its stdin closes before it is killed.
constexpr auto kExitGrace = std::chrono::seconds(2);

using Clock = std::chrono::steady_clock;

std::string describe_exit(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return "was killed by signal " + std::to_string(WTERMSIG(wait_status));
  return "stopped";
}

class CommandEmbedder : public Embedder {
 public:
  explicit CommandEmbedder(CommandOptions options)
      : options_(std::move(options)),
        identity_(command_identity(options_.command)),
        dim_(options_.known_dim) {}

  ~CommandEmbedder() override { stop_child(); }

  // Learns the dimension from one request when the options did not say it.
  Status probe() {
    if (dim_ > 0) return Status::OK();
    std::vector<float> row;
    std::lock_guard<std::mutex> lock(mu_);
    return request({"dimension probe"}, EmbedSide::kDocument, &row);
  }

  int dim() const override { return dim_; }
  const std::string& identity() const override { return identity_; }

  Status embed(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t base = out->size();
    const size_t batch = static_cast<size_t>(std::max(1, options_.batch_size));
    Progress progress("embedding", texts.size(), options_.show_progress);
    for (size_t begin = 0; begin < texts.size(); begin += batch) {
      size_t end = std::min(texts.size(), begin + batch);
      Status s = request(std::vector<std::string>(texts.begin() + begin, texts.begin() + end), side, out);
      if (!s.ok()) {
        out->resize(base);
        return s;
      }
      progress.add(end - begin);
    }
    return Status::OK();
  }

 private:
  Status fail(Code code, const std::string& problem) {
    stop_child();  // the stream is in an unknown state; the next call starts afresh
    std::string message = "command '" + options_.command + "' " + problem;
    return code == Code::kCorruption ? Status::Corruption(message) : Status::IOError(message);
  }

  // The child missed the request's deadline: kill it without the exit grace
  // (a hung child would only use it up) and say which timeout it missed.
  Status fail_timeout(const std::string& waiting_for) {
    stop_child(/*kill_now=*/true);
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%g", options_.read_timeout_seconds);
    return Status::IOError("command '" + options_.command + "' timed out after " + seconds + "s " +
                           waiting_for +
                           "; the child was killed (raise the command timeout if it is just slow)");
  }

  // Waits until fd_ is ready for `events` or the deadline passes; false on timeout.
  bool wait_ready(short events) {
    for (;;) {
      int timeout_ms = -1;
      if (has_deadline_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
        if (left <= 0) return false;
        timeout_ms = static_cast<int>(std::min<long long>(left, 60LL * 60 * 1000));
      }
      pollfd p = {fd_, events, 0};
      int n = ::poll(&p, 1, timeout_ms);
      if (n > 0) return true;  // ready, or an error/hangup the next send/recv reports
      if (n < 0 && errno != EINTR) return true;
    }
  }

  Status start_child() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return Status::IOError("command '" + options_.command +
                             "': socketpair failed: " + std::strerror(errno));
    }
    // The child's stdin and stdout are both its end of the socket pair.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    // Its own process group, so that ending it ends what sh runs too (sh
    // alone died and left the user's program running, holding our stderr).
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    const char* argv[] = {"sh", "-c", options_.command.c_str(), nullptr};
    int rc = posix_spawn(&pid_, "/bin/sh", &actions, &attributes, const_cast<char**>(argv), environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      pid_ = -1;
      return Status::IOError("command '" + options_.command + "': cannot start sh: " + std::strerror(rc));
    }
    fd_ = fds[0];
    buffer_.clear();
    return Status::OK();
  }

  // Closes the child's stdin and waits up to kExitGrace (none with kill_now)
  // for it to exit, then kills its process group: whatever it started and
  // left behind goes with it. Returns its wait status (or -1).
  int stop_child(bool kill_now = false) {
    if (pid_ <= 0) return -1;
    ::shutdown(fd_, SHUT_WR);
    auto deadline = Clock::now() + (kill_now ? Clock::duration::zero() : kExitGrace);
    // Waited for without reaping: until it is reaped its pid, the group's id,
    // cannot name another process group.
    for (;;) {
      siginfo_t info{};
      int rc = ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
      if ((rc == 0 && info.si_pid == pid_) || (rc < 0 && errno != EINTR) || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(fd_);
    fd_ = -1;
    pid_ = -1;
    return status;
  }

  Status write_line(const std::string& line) {
    size_t sent = 0;
    while (sent < line.size()) {
      if (!wait_ready(POLLOUT)) return fail_timeout("waiting for it to read its input");
      ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n <= 0) return fail(Code::kIOError, exit_story("stopped reading its input"));
      sent += static_cast<size_t>(n);
    }
    return Status::OK();
  }

  Status read_line(std::string* line) {
    size_t newline;
    char chunk[65536];
    while ((newline = buffer_.find('\n')) == std::string::npos) {
      if (!wait_ready(POLLIN)) return fail_timeout("waiting for its answer");
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n <= 0) return fail(Code::kIOError, exit_story("closed its output without answering"));
      buffer_.append(chunk, static_cast<size_t>(n));
      if (buffer_.size() > options_.max_reply_bytes) {
        return fail(Code::kCorruption, "answered a line longer than the limit of " +
                                           std::to_string(options_.max_reply_bytes) + " bytes");
      }
    }
    *line = buffer_.substr(0, newline);
    buffer_.erase(0, newline + 1);
    return Status::OK();
  }

  // Whether the running child has written anything since its last reply: left
  // in buffer_ by read_line, or waiting on the socket (read into buffer_ to be
  // quoted). An end of output is not counted: the next send or read says how
  // the child ended.
  bool unrequested_output() {
    if (!buffer_.empty()) return true;
    char chunk[4096];
    ssize_t n;
    while ((n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT)) < 0 && errno == EINTR) {
    }
    if (n > 0) buffer_.append(chunk, static_cast<size_t>(n));
    return n > 0;
  }

  // "<what>; it exited with status 3": reaps the child to say how it ended.
  std::string exit_story(const std::string& what) {
    int status = stop_child();
    return status < 0 ? what : what + " (it " + describe_exit(status) + ")";
  }

  // Sends one request line for `texts` and appends the reply's rows to *out.
  // Requires mu_.
  Status request(const std::vector<std::string>& texts, EmbedSide side, std::vector<float>* out) {
    if (pid_ <= 0) EMBEDAPT_RETURN_IF_ERROR(start_child());
    has_deadline_ = options_.read_timeout_seconds > 0;
    if (has_deadline_) {
      deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                                     std::min(options_.read_timeout_seconds, 1e9)));
    }
    // Replies carry no request id: only their order pairs them with requests.
    // One line more or less and every later reply answers another batch, so
    // output no request asked for ends the child instead.
    if (unrequested_output()) {
      return fail(Code::kCorruption,
                  "wrote output no request asked for: " + quotable(buffer_.substr(0, buffer_.find('\n'))) +
                      " (a reply per request, one line each, is the protocol)");
    }
    json message = {{"side", side == EmbedSide::kQuery ? "query" : "document"}, {"texts", texts}};
    EMBEDAPT_RETURN_IF_ERROR(write_line(message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"));
    std::string line;
    EMBEDAPT_RETURN_IF_ERROR(read_line(&line));
    if (!buffer_.empty()) {
      return fail(Code::kCorruption, "answered one request with more than one line (then: " +
                                         quotable(buffer_.substr(0, buffer_.find('\n'))) +
                                         "); a reply per request, one line each, is the protocol");
    }
    const size_t base = out->size();
    Status parsed = parse_command_reply(line, texts.size(), static_cast<size_t>(dim_), out);
    if (!parsed.ok()) return fail(parsed.code(), parsed.message());
    if (dim_ == 0 && !texts.empty()) dim_ = static_cast<int>((out->size() - base) / texts.size());
    return Status::OK();
  }

  const CommandOptions options_;
  const std::string identity_;
  int dim_;        // set once, by the probe or the options, before any embed()
  std::mutex mu_;  // one request at a time over the child's single stream
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buffer_;  // bytes read past the last line: between requests, none
  bool has_deadline_ = false;
  Clock::time_point deadline_;  // of the request in progress, when has_deadline_
};

}  // namespace

std::string command_identity(const std::string& command) { return "command:" + command; }

Status parse_command_reply(const std::string& line, size_t n, size_t dim, std::vector<float>* out) {
  // The child's line is untrusted: bounded in depth while parsing, and only
  // ever quoted as an excerpt of the line itself (dump() recurses per level).
  json reply;
  if (!parse_json(line, "reply", &reply).ok()) {
    return Status::Corruption("answered a line that is not JSON, or nests deeper than " +
                              std::to_string(kMaxJsonDepth) + " levels: " + quotable(line));
  }
  if (!reply.is_object())
    return Status::Corruption("answered a line that is not a JSON object: " + quotable(line));
  if (auto error = reply.find("error"); error != reply.end()) {
    return Status::IOError("reported an error: " +
                           quotable(error->is_string() ? error->get<std::string>() : line));
  }
  auto rows = reply.find("embeddings");
  if (rows == reply.end() || !rows->is_array()) {
    return Status::Corruption("answered without an \"embeddings\" array: " + quotable(line));
  }
  if (rows->size() != n) {
    return Status::Corruption("answered " + std::to_string(rows->size()) + " embeddings for " +
                              std::to_string(n) + " texts");
  }
  const size_t base = out->size();
  for (const json& row : *rows) {
    const size_t expected = dim > 0 ? dim : rows->front().size();
    if (!row.is_array() || row.empty() || row.size() != expected) {
      out->resize(base);
      return Status::Corruption("answered a row of " + std::to_string(row.is_array() ? row.size() : 0) +
                                " numbers, expected " + std::to_string(expected));
    }
    for (const json& v : row) {
      if (!v.is_number()) {
        out->resize(base);
        return Status::Corruption("answered a row holding a non-number");
      }
      out->push_back(v.get<float>());
      if (!std::isfinite(out->back())) {  // 1e999, or 1e300 narrowed to float
        out->resize(base);
        return Status::Corruption("answered a row holding a non-finite number");
      }
    }
  }
  return Status::OK();
}

Status open_command_embedder(const CommandOptions& options, std::unique_ptr<Embedder>* out) {
  if (options.command.empty()) return Status::InvalidArgument("command: no command given (use command:CMD)");
  auto embedder = std::make_unique<CommandEmbedder>(options);
  EMBEDAPT_RETURN_IF_ERROR(embedder->probe());
  *out = std::move(embedder);
  return Status::OK();
}

}  // namespace embedapt
