#include "core/common/sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace embedapt {

// OpenSSL 3 deprecates the SHA256_Init family; EVP is its incremental API.
struct Sha256::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
};

Sha256::Sha256() : state_(new State) { EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr); }

Sha256::~Sha256() {
  EVP_MD_CTX_free(state_->ctx);
  delete state_;
}

Sha256& Sha256::add(std::string_view data) {
  EVP_DigestUpdate(state_->ctx, data.data(), data.size());
  return *this;
}

std::string Sha256::digest() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(state_->ctx, out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace embedapt
