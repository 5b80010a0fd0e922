// Status: the outcome of an operation that can fail.
//
// Every fallible call in embedapt returns a Status instead of throwing. A Status
// is either ok() or carries a Code, which callers branch on, and a message,
// which names the input and the problem for a person to read.
#pragma once

#include <string>
#include <utility>

namespace embedapt {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // the caller passed something malformed
  kNotFound,            // a named thing (id, version, file) does not exist
  kCorruption,          // stored data failed a checksum or could not be parsed
  kIOError,             // the file system or the network failed
  kBusy,                // someone else holds the resource (another process's lock)
  kNotSupported,        // valid request this build or index type cannot serve
  kFailedPrecondition,  // the state does not allow this now (e.g. untrusted code)
  kUnavailable,         // a remote service kept failing after retries
  kInternal,            // a bug: an invariant did not hold
};

class Status {
 public:
  Status() = default;  // ok

  static Status OK() { return {}; }
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status Busy(std::string msg) { return {Code::kBusy, std::move(msg)}; }
  static Status NotSupported(std::string msg) { return {Code::kNotSupported, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) { return {Code::kFailedPrecondition, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "InvalidArgument: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>", same code.
  Status WithContext(const std::string& context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

const char* CodeName(Code code);

}  // namespace embedapt

// Returns early from the enclosing function when `expr` is not ok.
#define EMBEDAPT_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::embedapt::Status _embedapt_status = (expr);        \
    if (!_embedapt_status.ok()) return _embedapt_status; \
  } while (0)
