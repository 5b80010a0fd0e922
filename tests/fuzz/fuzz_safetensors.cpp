// safetensors parsing: any bytes give a Status; every tensor of an OK file
// converts to floats (or is refused) and round-trips through serialization.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/common/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace embedapt;
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
  if (!parse_safetensors({reinterpret_cast<const char*>(data), size}, &tensors, &metadata).ok()) return 0;
  for (const auto& [name, tensor] : tensors) {
    std::vector<float> values;
    if (tensor_to_floats(tensor, &values).ok() && int64_t(values.size()) != tensor.numel()) std::abort();
  }
  TensorMap again;
  if (!parse_safetensors(serialize_safetensors(tensors, metadata), &again).ok()) std::abort();
  if (again.size() != tensors.size()) std::abort();
  return 0;
}
