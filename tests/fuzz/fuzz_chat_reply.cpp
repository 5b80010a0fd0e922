// Chat completion replies (generate): any body gives a Status, never a throw.
#include <cstdint>
#include <string>

#include "core/generate/chat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string reply;
  embedapt::ChatUsage usage;
  embedapt::parse_chat_completion(std::string(reinterpret_cast<const char*>(data), size), &reply, &usage);
  return 0;
}
