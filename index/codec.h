// Byte encodings of the store's RocksDB keys and values.
//
// Integer keys are big-endian so that RocksDB's bytewise order is numeric
// order (journal replay, oldest-hit eviction and version listing rely on it).
// Values are little-endian fixed-width integers and length-prefixed strings.
// Decoders never trust their input: they return false on short or malformed
// bytes, and the caller turns that into Code::kCorruption naming the key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace embedapt::codec {

std::string key_u64(uint64_t v);  // 8 bytes, big-endian
bool parse_key_u64(std::string_view key, uint64_t* v);

// Appends to / consumes from the front of a value.
void put_u64(std::string* dst, uint64_t v);
void put_string(std::string* dst, std::string_view s);        // u64 length + bytes
void put_floats(std::string* dst, const float* v, size_t n);  // u64 count + floats
bool get_u64(std::string_view* src, uint64_t* v);
bool get_string(std::string_view* src, std::string* s);
bool get_floats(std::string_view* src, std::vector<float>* v);

}  // namespace embedapt::codec
