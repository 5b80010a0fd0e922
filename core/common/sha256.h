// SHA-256 and hex: the one implementation behind every checksum, content
// key and fingerprint in the project.
#pragma once

#include <string>
#include <string_view>

namespace embedapt {

// Incremental SHA-256, for inputs made of parts or too large to concatenate.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  Sha256& add(std::string_view data);
  // The 32-byte digest of everything added. Call once; the hasher is spent.
  std::string digest();

 private:
  struct State;
  State* state_;
};

// The 32-byte SHA-256 digest of `data`.
std::string sha256(std::string_view data);

// `bytes` as lower-case hex, two digits a byte.
std::string hex(std::string_view bytes);

}  // namespace embedapt
