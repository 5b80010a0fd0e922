#include "core/common/npy.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "core/common/files.h"

namespace embedapt {

namespace {

constexpr char kMagic[] = "\x93NUMPY";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Offers parse() what follows each `'key' : ` of the header (any spaces around
// the colon), first to last, until it accepts one. A hand scan rather than
// <regex>: std::regex alone made this file take 9 CPU-s to compile.
template <typename Parse>
bool find_entry(std::string_view header, std::string_view quoted_key, Parse parse) {
  for (size_t at = header.find(quoted_key); at != std::string_view::npos;
       at = header.find(quoted_key, at + 1)) {
    size_t i = at + quoted_key.size();
    while (i < header.size() && is_space(header[i])) ++i;
    if (i == header.size() || header[i] != ':') continue;
    ++i;
    while (i < header.size() && is_space(header[i])) ++i;
    if (parse(header.substr(i))) return true;
  }
  return false;
}

// How many entries `'key' :` the header opens (find_entry, accepting none).
size_t entries(std::string_view header, std::string_view quoted_key) {
  size_t count = 0;
  find_entry(header, quoted_key, [&count](std::string_view) {
    ++count;
    return false;
  });
  return count;
}

Status parse_header(std::string_view header, std::string* descr, bool* fortran, std::vector<size_t>* shape) {
  // A dict, each key once: an unclosed one, or one naming 'descr' twice, was
  // read as if well formed.
  std::string_view dict = header;
  while (!dict.empty() && is_space(dict.back())) dict.remove_suffix(1);
  if (dict.empty() || dict.front() != '{' || dict.back() != '}') {
    return Status::InvalidArgument("header is not a dict {...}");
  }
  for (std::string_view key : {"'descr'", "'fortran_order'", "'shape'"}) {
    if (entries(header, key) > 1)
      return Status::InvalidArgument("header names " + std::string(key) + " twice");
  }
  auto quoted = [&](std::string_view value) {
    if (value.empty() || value[0] != '\'') return false;
    size_t end = value.find('\'', 1);
    if (end == std::string_view::npos) return false;
    *descr = std::string(value.substr(1, end - 1));
    return true;
  };
  if (!find_entry(header, "'descr'", quoted)) return Status::InvalidArgument("header has no 'descr'");
  auto boolean = [&](std::string_view value) {
    *fortran = value.rfind("True", 0) == 0;
    return *fortran || value.rfind("False", 0) == 0;
  };
  if (!find_entry(header, "'fortran_order'", boolean)) {
    return Status::InvalidArgument("header has no 'fortran_order'");
  }
  std::string_view dims;
  auto tuple = [&](std::string_view value) {
    if (value.empty() || value[0] != '(') return false;
    size_t end = value.find(')');
    if (end == std::string_view::npos) return false;
    dims = value.substr(1, end - 1);
    return true;
  };
  if (!find_entry(header, "'shape'", tuple)) return Status::InvalidArgument("header has no 'shape'");
  // Every run of digits between the parentheses is a dimension.
  shape->clear();
  for (size_t i = 0; i < dims.size();) {
    if (dims[i] < '0' || dims[i] > '9') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
    // from_chars, not stoull: a dimension past 2^64 is bad data, not an exception.
    size_t dim = 0;
    auto [stop, ec] = std::from_chars(dims.data() + i, dims.data() + end, dim);
    if (ec != std::errc() || stop != dims.data() + end) {
      return Status::InvalidArgument(
          "shape dimension " + std::string(dims.substr(i, std::min<size_t>(end - i, 40))) + " is too large");
    }
    shape->push_back(dim);
    i = end;
  }
  return Status::OK();
}

}  // namespace

Status read_npy(const std::string& path, Matrix* out) {
  std::string bytes;
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, &bytes));
  return parse_npy(bytes, out).WithContext(path);
}

Status parse_npy(std::string_view bytes, Matrix* out) {
  auto bad = [&](const std::string& why) { return Status::InvalidArgument("not a valid .npy file: " + why); };
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) return bad("missing NUMPY magic");
  uint8_t major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  } else {
    return bad("unsupported version " + std::to_string(major));
  }
  if (header_start + header_len > bytes.size()) return bad("truncated header");
  std::string descr;
  bool fortran = false;
  std::vector<size_t> shape;
  Status s = parse_header(bytes.substr(header_start, header_len), &descr, &fortran, &shape);
  if (!s.ok()) return bad(s.message());
  if (fortran) return bad("Fortran order is not supported (save with np.ascontiguousarray)");
  if (shape.empty() || shape.size() > 2) return bad("expected a 1-D or 2-D array");
  size_t rows = shape.size() == 2 ? shape[0] : 1;
  size_t cols = shape.back();
  size_t item = 0;
  if (descr == "<f4")
    item = 4;
  else if (descr == "<f8")
    item = 8;
  else
    return bad("dtype '" + descr + "' is not float32 or float64");
  // An empty array has no bytes to vouch for its other dimension, which
  // callers would otherwise size loops and buffers by.
  if (cols == 0) return bad("rows of zero length");
  if (rows == 0 && cols > kMaxNpyCols) return bad("an empty array with " + std::to_string(cols) + " columns");
  if (rows > (SIZE_MAX / item) / cols) return bad("shape too large");
  size_t payload = rows * cols * item;
  size_t data_start = header_start + header_len;
  if (bytes.size() - data_start != payload) {
    return bad("data size " + std::to_string(bytes.size() - data_start) + " does not match shape (expected " +
               std::to_string(payload) + " bytes)");
  }
  out->rows = rows;
  out->cols = cols;
  out->data.resize(rows * cols);
  const char* src = bytes.data() + data_start;
  if (item == 4) {
    if (payload > 0) std::memcpy(out->data.data(), src, payload);  // an empty vector's data() may be null
  } else {
    for (size_t i = 0; i < rows * cols; ++i) {
      double v;
      std::memcpy(&v, src + i * 8, 8);
      out->data[i] = static_cast<float>(v);
    }
  }
  return Status::OK();
}

Status write_npy(const std::string& path, const Matrix& m) {
  if (m.data.size() != m.rows * m.cols)
    return Status::InvalidArgument("matrix data does not match its shape");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.rows) + ", " +
                       std::to_string(m.cols) + "), }";
  // Pad so that the data starts at a multiple of 64 bytes, ending in '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes(kMagic, 6);
  bytes.push_back('\x01');
  bytes.push_back('\x00');
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>(header.size() >> 8));
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(m.data.data()), m.data.size() * sizeof(float));
  return write_file_atomic(path, bytes);
}

}  // namespace embedapt
