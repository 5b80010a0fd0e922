// NumPy .npy files: 2-D float32 matrices in, float32 matrices out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct Matrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<float> data;  // row-major, rows * cols

  const float* row(size_t i) const { return data.data() + i * cols; }
};

// Reads a C-order 2-D array of float32 or float64 (converted to float32),
// little-endian. A 1-D array reads as one row. Errors name the file.
Status read_npy(const std::string& path, Matrix* out);
// The same for the file's bytes (errors do not name a file).
Status parse_npy(std::string_view bytes, Matrix* out);

// Widest row an empty (0-row) array may declare.
constexpr size_t kMaxNpyCols = 65536;

// Writes `m` as a float32 .npy file, atomically.
Status write_npy(const std::string& path, const Matrix& m);

}  // namespace embedapt
