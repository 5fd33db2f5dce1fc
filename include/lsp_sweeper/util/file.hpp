// Files other programs read while the sweeper may be writing them (the JSON report, the
// metrics file): they must never see half a file. And files that hold a secret.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace lsp_sweeper::util {

// A file that cannot be read or written as asked; the message says which file and why (the
// system's reason, strerror).
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where one output of a run goes (README, "Outputs"):
// - "-": standard output;
// - a path that does not exist, or a regular file (also through a symbolic link, which stays
//   a link): the text goes to a temporary file beside the file (the link's target) and is
//   renamed over it by commit(), so a reader sees the old file or the new one, never half;
// - a character device or a FIFO (/dev/null, /dev/stdout, a pipe), also through a link: the
//   text is written into it, never replacing it; a FIFO nobody reads is refused rather than
//   waited on;
// - anything else (a directory, a block device, a socket, a dangling link) is refused.
// Every failure throws FileError.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // True for a temporary file not yet in place: write may be called again and replaces what
  // the last call wrote. A stream takes exactly one write.
  bool rewritable() const { return !temporary_.empty(); }
  void write(const std::string& text);
  // Flushes the temporary file to disk and renames it into place; nothing for a stream.
  void commit();

 private:
  std::string target_;     // what is replaced or written into, for messages
  std::string temporary_;  // empty for a stream
  int fd_ = -1;
  bool owns_fd_ = false;
  bool written_ = false;
};

// Whether other users may read a file of this mode (o+r): a file holding a secret must not
// be so readable.
constexpr bool readable_by_others(mode_t mode) { return (mode & S_IROTH) != 0; }

// The contents of a file holding a secret. Throws FileError when it is not a regular file,
// is readable by other users (with the chmod that fixes it), or cannot be read.
std::string read_secret_file(const std::string& path);

// The whole file, or nothing when it does not exist or cannot be read.
std::optional<std::string> read_file(const std::string& path);

}  // namespace lsp_sweeper::util
