#include "core/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace embedapt {

// Sized once from fstat and filled by read(2): a stream buffer grown by
// doubling copied a 1.5 GB index snapshot several times over. Reads on to
// the end, so a file that grows meanwhile or reports no size (a pipe, /proc)
// is read whole too.
Status read_file(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  out->resize(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? static_cast<size_t>(st.st_size) : 0);
  size_t done = 0;
  char more[1 << 16];
  for (;;) {
    const bool in_place = done < out->size();
    ssize_t n = in_place ? ::read(fd, out->data() + done, out->size() - done) : ::read(fd, more, sizeof more);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Status::IOError(path + ": read failed: " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    if (!in_place) out->append(more, static_cast<size_t>(n));
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out->resize(done);
  return Status::OK();
}

namespace {

Status fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) return Status::IOError(path + ": cannot open for fsync: " + std::strerror(errno));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Status::IOError(path + ": fsync failed: " + std::strerror(errno));
  return Status::OK();
}

// Writes all of `data` to `fd`.
Status write_all(int fd, const std::string& path, std::string_view data) {
  size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(path + ": write failed: " + std::strerror(errno));
    written += static_cast<size_t>(n);
  }
  return Status::OK();
}

// The crash-safe replacement of the plain file (or nothing yet) at `path`.
Status replace_file(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(tmp + ": cannot create: " + std::strerror(errno));
  if (Status s = write_all(fd, tmp, data); !s.ok()) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Status::IOError(tmp + ": fsync failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::IOError(path + ": rename failed: " + std::strerror(errno));
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return fsync_path(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

// Links followed at most this many times, as the kernel does (ELOOP).
constexpr int kMaxLinkHops = 40;

}  // namespace

Status write_file_atomic(const std::string& path, std::string_view data) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // of what a link points to
  if (fs::is_directory(st)) return Status::IOError(path + ": is a directory");
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    // A FIFO, a terminal, a device (/dev/stdout): written to as it is.
    // Renaming a file over it replaced the node instead of writing to it.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
    Status s = write_all(fd, path, data);
    if (::close(fd) != 0 && s.ok()) s = Status::IOError(path + ": write failed: " + std::strerror(errno));
    return s;
  }
  // A link stays and its target is replaced (renaming over the link replaced
  // the link with a file and left the target as it was).
  fs::path file = path;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(file, ec)); ++hops) {
    if (hops == kMaxLinkHops) return Status::IOError(path + ": too many levels of symbolic links");
    const fs::path next = fs::read_symlink(file, ec);
    if (ec) return Status::IOError(path + ": cannot read the link: " + ec.message());
    file = next.is_absolute() ? next : file.parent_path() / next;
  }
  return replace_file(file.string(), data);
}

}  // namespace embedapt
