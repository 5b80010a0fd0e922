#include "index/codec.h"

#include <cstring>

namespace embedapt::codec {

std::string key_u64(uint64_t v) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return key;
}

bool parse_key_u64(std::string_view key, uint64_t* v) {
  if (key.size() < 8) return false;
  uint64_t out = 0;
  for (int i = 0; i < 8; ++i) out = (out << 8) | static_cast<uint8_t>(key[i]);
  *v = out;
  return true;
}

void put_u64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  dst->append(buf, 8);
}

void put_string(std::string* dst, std::string_view s) {
  put_u64(dst, s.size());
  dst->append(s);
}

void put_floats(std::string* dst, const float* v, size_t n) {
  put_u64(dst, n);
  dst->append(reinterpret_cast<const char*>(v), n * sizeof(float));
}

bool get_u64(std::string_view* src, uint64_t* v) {
  if (src->size() < 8) return false;
  uint64_t out = 0;
  for (int i = 7; i >= 0; --i) out = (out << 8) | static_cast<uint8_t>((*src)[i]);
  *v = out;
  src->remove_prefix(8);
  return true;
}

bool get_string(std::string_view* src, std::string* s) {
  uint64_t n = 0;
  if (!get_u64(src, &n) || src->size() < n) return false;
  s->assign(src->data(), n);
  src->remove_prefix(n);
  return true;
}

bool get_floats(std::string_view* src, std::vector<float>* v) {
  uint64_t n = 0;
  if (!get_u64(src, &n) || src->size() / sizeof(float) < n) return false;
  v->resize(n);
  std::memcpy(v->data(), src->data(), n * sizeof(float));
  src->remove_prefix(n * sizeof(float));
  return true;
}

}  // namespace embedapt::codec
