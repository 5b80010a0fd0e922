// OpenAI-compatible embedding replies: any body gives a Status; an OK one has
// exactly n finite rows of one dimension. The first byte picks n and dim.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/embed/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t n = data[0] & 7, dim = data[0] >> 4;
  std::vector<std::vector<float>> rows;
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!embedapt::parse_openai_embeddings(body, n, dim, &rows).ok()) return 0;
  if (rows.size() != n) std::abort();
  for (const auto& row : rows) {
    if (row.empty() || row.size() != rows[0].size() || (dim > 0 && row.size() != dim)) std::abort();
    for (float v : row) {
      if (!std::isfinite(v)) std::abort();
    }
  }
  return 0;
}
