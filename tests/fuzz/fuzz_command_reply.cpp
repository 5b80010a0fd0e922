// command: embedder reply lines: any line gives a Status; an OK one appends
// exactly n finite rows of one dimension. The first byte picks n and dim.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/embed/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n = data[0] & 7, dim = data[0] >> 4;
  std::vector<float> out = {1.0f};  // what earlier requests appended stays
  std::string line(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!embedapt::parse_command_reply(line, n, dim, &out).ok()) {
    if (out.size() != 1) std::abort();
    return 0;
  }
  if (dim > 0 && out.size() != 1 + n * dim) std::abort();
  if (n > 0 && (out.size() - 1) % n != 0) std::abort();
  for (float v : out) {
    if (!std::isfinite(v)) std::abort();
  }
  return 0;
}
