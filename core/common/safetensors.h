// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping tensor names to dtype, shape and byte range, then the bytes.
// Torch-free, so both the encoder and the adapters can share it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "embedapt/status.h"

namespace embedapt {

struct RawTensor {
  std::string dtype;  // "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  std::string data;  // little-endian bytes, product(shape) * itemsize

  int64_t numel() const;
};

using TensorMap = std::map<std::string, RawTensor>;

// Parses safetensors bytes. Code::kCorruption names the problem (truncated,
// bad header, ranges out of bounds or overlapping, size not matching shape).
Status parse_safetensors(std::string_view bytes, TensorMap* tensors,
                         std::map<std::string, std::string>* metadata = nullptr);

// Serializes tensors (sorted by name) with optional string metadata.
std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

// Bytes per element of a dtype name, 0 if unknown.
size_t safetensors_itemsize(const std::string& dtype);

// Copies a F32, F16 or BF16 tensor into floats.
Status tensor_to_floats(const RawTensor& tensor, std::vector<float>* out);

// A F32 tensor from floats.
RawTensor floats_to_tensor(const std::vector<float>& values, std::vector<int64_t> shape);

}  // namespace embedapt
