// Devices for tests that write into one (/dev/null, /dev/full). As root, a private one in
// `dir` (the same device, 1:3 or 1:7): a regression that replaces the device it is given then
// breaks only the test's copy, never the machine's. Unprivileged, the machine's own, which
// such a user cannot replace.
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace lsp_sweeper::util {

// `name` is "null" or "full".
inline std::string testing_device(const std::string& dir, const std::string& name) {
  if (::geteuid() != 0) return "/dev/" + name;
  const std::string path = dir + "/" + name;
  const unsigned minor = name == "null" ? 3 : 7;
  if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, minor)) != 0) {
    throw std::runtime_error("cannot create a device at " + path);
  }
  return path;
}

}  // namespace lsp_sweeper::util
