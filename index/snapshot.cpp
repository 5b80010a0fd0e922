#include "index/snapshot.h"

#include <cstring>
#include <filesystem>

#include "core/common/files.h"
#include "core/common/sha256.h"
#include "index/codec.h"

namespace embedapt {
namespace {

constexpr std::string_view kMagic = "EMBSNAP1";
constexpr size_t kDigestBytes = 32;  // SHA-256
constexpr size_t kHeaderBytes = 8 + 8 + 8 + 8 + kDigestBytes;

}  // namespace

Status write_snapshot(const std::string& path, const SnapshotInfo& info, std::string_view payload) {
  std::string file;
  file.reserve(kHeaderBytes + payload.size());
  file.append(kMagic);
  codec::put_u64(&file, info.seq);
  codec::put_u64(&file, info.doc_adapter);
  codec::put_u64(&file, payload.size());
  file.append(sha256(payload));
  file.append(payload);
  return write_file_atomic(path, file);
}

Status read_snapshot(const std::string& path, SnapshotInfo* info, std::string* payload) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no snapshot");
  std::string file;
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, &file));
  std::string_view in(file);
  uint64_t length = 0;
  if (in.size() < kHeaderBytes || in.substr(0, kMagic.size()) != kMagic) {
    return Status::Corruption(path + ": not a snapshot (bad magic or short header)");
  }
  in.remove_prefix(kMagic.size());
  codec::get_u64(&in, &info->seq);
  codec::get_u64(&in, &info->doc_adapter);
  codec::get_u64(&in, &length);
  std::string_view checksum = in.substr(0, kDigestBytes);
  in.remove_prefix(kDigestBytes);
  if (in.size() != length) {
    return Status::Corruption(path + ": payload is " + std::to_string(in.size()) + " bytes, header says " +
                              std::to_string(length));
  }
  if (sha256(in) != checksum) return Status::Corruption(path + ": checksum mismatch");
  payload->assign(in);
  return Status::OK();
}

}  // namespace embedapt
