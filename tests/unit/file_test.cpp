// util::OutputFile and util::read_secret_file against the kinds of file an operator may name.
#include "lsp_sweeper/util/file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/devices.hpp"

namespace lsp_sweeper::util {
namespace {

namespace fs = std::filesystem;

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/lsp-sweeper-files.XXXXXX";
    dir_ = mkdtemp(dir_template);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static void write(const std::string& path, const std::string& text) {
    OutputFile file(path);
    file.write(text);
    file.commit();
  }
  static std::string error_of(const std::string& path) {
    try {
      OutputFile file(path);
    } catch (const FileError& e) {
      return e.what();
    }
    return "";
  }
  std::size_t entries() const { return std::distance(fs::directory_iterator(dir_), {}); }

  fs::path dir_;
};

TEST_F(Files, NewAndRegularFilesAreReplacedWholeByRename) {
  const std::string file = path("report.json");
  write(file, "first");
  EXPECT_EQ(read_file(file), "first");
  {
    OutputFile out(file);
    EXPECT_TRUE(out.rewritable());
    out.write("a longer second text");
    out.write("second");  // replaces what the last write put there
    EXPECT_EQ(read_file(file), "first") << "nothing in place before commit";
    out.commit();
  }
  EXPECT_EQ(read_file(file), "second");
  EXPECT_EQ(entries(), 1u) << "no temporary file left";
}

TEST_F(Files, AnUncommittedFileLeavesNothingBehind) {
  {
    OutputFile out(path("report.json"));
    out.write("never in place");
  }
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Files, ASymbolicLinkStaysALinkAndItsTargetIsReplaced) {
  const std::string target = path("target.json"), link = path("link.json");
  write(target, "old");
  fs::create_symlink(target, link);
  write(link, "new");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_file(target), "new");
  EXPECT_EQ(entries(), 2u);
}

TEST_F(Files, DevNullIsWrittenIntoNotReplaced) {
  const std::string null = testing_device(dir_.string(), "null");
  OutputFile out(null);
  EXPECT_FALSE(out.rewritable());
  out.write("text");
  out.commit();
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(null)));
  EXPECT_THROW(out.write("again"), std::logic_error) << "a stream takes one write";
}

TEST_F(Files, AFifoIsWrittenIntoWhenReadAndRefusedWhenNot) {
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of(fifo), fifo + " is a FIFO that no process reads");

  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  {
    OutputFile out(fifo);
    EXPECT_FALSE(out.rewritable());
    out.write("through the fifo");
  }
  char buf[64] = {};
  EXPECT_EQ(::read(reader, buf, sizeof buf - 1), 16);
  EXPECT_STREQ(buf, "through the fifo");
  ::close(reader);
  EXPECT_TRUE(fs::is_fifo(fifo));
}

TEST_F(Files, WhatCannotBeWrittenIsRefusedWithItsReason) {
  EXPECT_EQ(error_of(dir_.string()), dir_.string() + " is a directory");
  const std::string missing = path("missing/report.json");
  EXPECT_EQ(error_of(missing), "creating " + missing + ".tmp." + std::to_string(getpid()) +
                                   ": No such file or directory");
  const std::string dangling = path("dangling");
  fs::create_symlink(path("nowhere"), dangling);
  EXPECT_EQ(error_of(dangling), dangling + " is a symbolic link to a file that does not exist");
  const std::string socket_path = path("socket");
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socket_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(error_of(socket_path),
            socket_path + " is not a regular file, a character device or a FIFO");
  ::close(sock);
}

TEST_F(Files, AFullDeviceFailsTheWriteWithItsReason) {
  const std::string full = testing_device(dir_.string(), "full");
  OutputFile out(full);
  try {
    out.write("text");
    ADD_FAILURE() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(std::string(e.what()), "writing " + full + ": No space left on device");
  }
}

TEST_F(Files, SecretFilesMustBePrivateRegularFiles) {
  const std::string token = path("token");
  std::ofstream(token) << "tok\n";
  fs::permissions(token, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(read_secret_file(token), "tok\n");
  fs::permissions(token, fs::perms::others_read, fs::perm_options::add);
  try {
    read_secret_file(token);
    ADD_FAILURE() << "a world-readable secret was accepted";
  } catch (const FileError& e) {
    EXPECT_EQ(std::string(e.what()), token + " is readable by every user: chmod o-r " + token);
  }
  EXPECT_THROW(read_secret_file(dir_.string()), FileError);
  EXPECT_THROW(read_secret_file(path("missing")), FileError);
}

}  // namespace
}  // namespace lsp_sweeper::util
