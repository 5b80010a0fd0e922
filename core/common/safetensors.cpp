#include "core/common/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

namespace embedapt {

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t safetensors_itemsize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

Status parse_safetensors(std::string_view bytes, TensorMap* tensors,
                         std::map<std::string, std::string>* metadata) {
  auto corrupt = [](const std::string& why) { return Status::Corruption("safetensors: " + why); };
  if (bytes.size() < 8) return corrupt("truncated: shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > bytes.size() - 8) return corrupt("truncated: header length exceeds the data");
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_len), nullptr, false);
  if (header.is_discarded() || !header.is_object()) return corrupt("header is not a JSON object");
  std::string_view data = bytes.substr(8 + header_len);

  tensors->clear();
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && entry.is_object()) {
        for (auto& [k, v] : entry.items()) {
          if (v.is_string()) (*metadata)[k] = v.get<std::string>();
        }
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() || !entry["shape"].is_array() ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2) {
      return corrupt("tensor '" + name + "' has a malformed entry");
    }
    RawTensor t;
    t.dtype = entry["dtype"].get<std::string>();
    size_t item = safetensors_itemsize(t.dtype);
    if (item == 0) return corrupt("tensor '" + name + "' has unknown dtype " + t.dtype);
    uint64_t count = 1;
    for (auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) return corrupt("tensor '" + name + "' has a bad shape");
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && count > (uint64_t{1} << 40) / dim) return corrupt("tensor '" + name + "' is too large");
      count *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
      return corrupt("tensor '" + name + "' has bad data_offsets");
    }
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data.size()) {
      return corrupt("tensor '" + name + "' lies outside the data (truncated file?)");
    }
    if (end - begin != count * item) return corrupt("tensor '" + name + "' size does not match its shape");
    t.data.assign(data.substr(begin, end - begin));
    ranges.emplace_back(begin, end);
    (*tensors)[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return corrupt("tensor data ranges overlap");
  }
  return Status::OK();
}

std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string out(8, '\0');
  uint64_t len = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  out += json;
  for (const auto& [name, t] : tensors) out += t.data;
  return out;
}

Status tensor_to_floats(const RawTensor& tensor, std::vector<float>* out) {
  size_t n = static_cast<size_t>(tensor.numel());
  out->resize(n);
  const auto* src = reinterpret_cast<const uint8_t*>(tensor.data.data());
  if (tensor.dtype == "F32") {
    std::memcpy(out->data(), src, n * 4);
  } else if (tensor.dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = static_cast<uint32_t>(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
      std::memcpy(&(*out)[i], &bits, 4);
    }
  } else if (tensor.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
      uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
      if (exp == 0) {
        if (mant == 0) {
          bits = sign;
        } else {  // subnormal: normalise
          exp = 127 - 15 + 1;
          while (!(mant & 0x400)) {
            mant <<= 1;
            --exp;
          }
          bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
      } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
      } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
      }
      std::memcpy(&(*out)[i], &bits, 4);
    }
  } else {
    return Status::InvalidArgument("tensor dtype " + tensor.dtype + " is not a float type");
  }
  return Status::OK();
}

RawTensor floats_to_tensor(const std::vector<float>& values, std::vector<int64_t> shape) {
  RawTensor t;
  t.dtype = "F32";
  t.shape = std::move(shape);
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

}  // namespace embedapt
