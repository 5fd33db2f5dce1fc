#include "lsp_sweeper/util/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lsp_sweeper::util {

namespace {

FileError system_error(const std::string& what, int error) {
  return FileError(what + ": " + std::strerror(error));
}

void write_all(int fd, const std::string& text, const std::string& what) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw system_error("writing " + what, errno);
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

// The file a symbolic link ends at, so that replacing it leaves the link in place.
std::string resolved(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) throw system_error("resolving " + path, errno);
  return buf;
}

}  // namespace

OutputFile::OutputFile(const std::string& path) : target_(path) {
  if (path == "-") {
    target_ = "standard output";
    fd_ = STDOUT_FILENO;
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    struct stat link {};
    if (error == ENOENT && ::lstat(path.c_str(), &link) == 0) {
      throw FileError(path + " is a symbolic link to a file that does not exist");
    }
    if (error != ENOENT) throw system_error(path, error);
    st.st_mode = S_IFREG;  // a new file
  } else if (S_ISREG(st.st_mode)) {
    target_ = resolved(path);
  }

  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    // O_NONBLOCK only for the open: a FIFO without a reader fails (ENXIO) instead of holding
    // the run forever; the writes themselves block as usual.
    fd_ = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd_ < 0 && errno == ENXIO) throw FileError(path + " is a FIFO that no process reads");
    if (fd_ < 0) throw system_error("opening " + path, errno);
    owns_fd_ = true;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    return;
  }
  if (S_ISDIR(st.st_mode)) throw FileError(path + " is a directory");
  if (!S_ISREG(st.st_mode)) {
    throw FileError(path + " is not a regular file, a character device or a FIFO");
  }

  // The pid keeps two runs writing the same file (a dry run beside a real one) from sharing
  // a temporary file; O_EXCL | O_NOFOLLOW never write through a link planted at that name.
  temporary_ = target_ + ".tmp." + std::to_string(getpid());
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  fd_ = ::open(temporary_.c_str(), flags, 0666);
  if (fd_ < 0 && errno == EEXIST && ::unlink(temporary_.c_str()) == 0) {
    fd_ = ::open(temporary_.c_str(), flags, 0666);  // left by a killed run of the same pid
  }
  if (fd_ < 0) {
    const int error = errno;
    temporary_.clear();
    throw system_error("creating " + target_ + ".tmp." + std::to_string(getpid()), error);
  }
  owns_fd_ = true;
}

OutputFile::~OutputFile() {
  if (owns_fd_) ::close(fd_);
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

void OutputFile::write(const std::string& text) {
  if (rewritable()) {
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
      throw system_error("truncating " + temporary_, errno);
    }
    write_all(fd_, text, temporary_);
    return;
  }
  if (written_) throw std::logic_error("a stream takes one write: " + target_);
  written_ = true;
  write_all(fd_, text, target_);
}

void OutputFile::commit() {
  if (!rewritable()) return;
  if (::fsync(fd_) != 0) throw system_error("flushing " + temporary_, errno);
  if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
    throw system_error("moving " + temporary_ + " into place at " + target_, errno);
  }
  temporary_.clear();
}

std::string read_secret_file(const std::string& path) {
  // Checked on the open file, not the name; O_NONBLOCK keeps a FIFO from holding the run.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw system_error(path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw system_error(path, errno);
  if (!S_ISREG(st.st_mode)) throw FileError(path + " is not a regular file");
  if (readable_by_others(st.st_mode)) {
    throw FileError(path + " is readable by every user: chmod o-r " + path);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw system_error("reading " + path, errno);
    if (n == 0) return text;
    text.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace lsp_sweeper::util
