// NumPy .npy files: 2-D float32 matrices in, float32 matrices out.
#pragma once

#include <cstddef>
#include <string>
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

// Writes `m` as a float32 .npy file, atomically.
Status write_npy(const std::string& path, const Matrix& m);

}  // namespace embedapt
