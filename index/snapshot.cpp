#include "index/snapshot.h"

#include <cstring>
#include <filesystem>

#include "core/common/files.h"
#include "core/common/sha256.h"
#include "index/codec.h"

namespace embedapt {
namespace {

constexpr std::string_view kMagic = "EMBSNAP2";
constexpr size_t kDigestBytes = 32;  // SHA-256
constexpr size_t kHeaderBytes = 8 + 8 + 8 + kStoreIdBytes + 8 + kDigestBytes;

}  // namespace

Status write_snapshot(const std::string& path, const SnapshotInfo& info, std::string_view payload) {
  std::string file;
  file.reserve(kHeaderBytes + payload.size());
  file.append(kMagic);
  codec::put_u64(&file, info.seq);
  codec::put_u64(&file, info.doc_adapter);
  if (info.store_id.size() != kStoreIdBytes) return Status::Internal("snapshot: malformed store id");
  file.append(info.store_id);
  codec::put_u64(&file, payload.size());
  file.append(sha256(payload));
  file.append(payload);
  return write_file_atomic(path, file);
}

Status read_snapshot(const std::string& path, SnapshotInfo* info, std::string* file,
                     std::string_view* payload) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no snapshot");
  EMBEDAPT_RETURN_IF_ERROR(read_file(path, file));
  return parse_snapshot(*file, /*check_sum=*/true, info, payload).WithContext(path);
}

Status parse_snapshot(std::string_view in, bool check_sum, SnapshotInfo* info, std::string_view* payload) {
  uint64_t length = 0;
  if (in.size() < kHeaderBytes || in.substr(0, kMagic.size()) != kMagic) {
    return Status::Corruption("not a snapshot (bad magic or short header)");
  }
  in.remove_prefix(kMagic.size());
  codec::get_u64(&in, &info->seq);
  codec::get_u64(&in, &info->doc_adapter);
  info->store_id.assign(in.substr(0, kStoreIdBytes));
  in.remove_prefix(kStoreIdBytes);
  codec::get_u64(&in, &length);
  std::string_view checksum = in.substr(0, kDigestBytes);
  in.remove_prefix(kDigestBytes);
  if (in.size() != length) {
    return Status::Corruption("payload is " + std::to_string(in.size()) + " bytes, header says " +
                              std::to_string(length));
  }
  if (check_sum && sha256(in) != checksum) return Status::Corruption("checksum mismatch");
  *payload = in;
  return Status::OK();
}

}  // namespace embedapt
