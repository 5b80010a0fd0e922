// .npy parsing: any bytes give a Status, and an OK matrix matches its shape.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/common/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  embedapt::Matrix m;
  if (embedapt::parse_npy({reinterpret_cast<const char*>(data), size}, &m).ok()) {
    if (m.data.size() != m.rows * m.cols || m.cols == 0) std::abort();
  }
  return 0;
}
