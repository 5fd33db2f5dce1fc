// A null device for tests that write into one. As root, a private one in `dir` (the same
// device as /dev/null, 1:3): a regression that replaces the device it is given then breaks
// only the test's copy, never the machine's /dev/null. Unprivileged, /dev/null itself, which
// such a user cannot replace.
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace lsp_sweeper::util {

inline std::string testing_null_device(const std::string& dir) {
  if (::geteuid() != 0) return "/dev/null";
  const std::string path = dir + "/null";
  if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
    throw std::runtime_error("cannot create a null device at " + path);
  }
  return path;
}

}  // namespace lsp_sweeper::util
