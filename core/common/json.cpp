#include "core/common/json.h"

#include "core/common/utf8.h"

namespace embedapt {

namespace {

struct TooDeep {};

constexpr size_t kMaxReasonBytes = 200;

}  // namespace

Status parse_json(std::string_view text, const std::string& where, nlohmann::json* out) {
  // The callback sees each array or object as it opens, at its depth (the
  // outermost at 0), and stops the parse past the limit by throwing.
  auto bounded = [](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    *out = nlohmann::json::parse(text.begin(), text.end(), bounded);
  } catch (const TooDeep&) {
    *out = nullptr;
    return Status::InvalidArgument(where + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                                   " levels");
  } catch (const nlohmann::json::exception& e) {
    *out = nullptr;
    // The parser quotes what it read up to the error, which may be all of it.
    return Status::InvalidArgument(where + ": not JSON: " + quotable(e.what(), kMaxReasonBytes));
  }
  return Status::OK();
}

}  // namespace embedapt
