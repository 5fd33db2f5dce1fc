// A second process on a SQLite file, as the LSP is to the sweeper: the store tests need its
// locks held by another process, which SQLite's and the kernel's rules treat unlike a second
// connection of the test's own.
#pragma once

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace lsp_sweeper::testing {

// A second process on the file, driven over two pipes: each command byte runs one step of
// the transaction the test names, and the child answers one byte per step (1 done, 0 failed).
class OtherProcess {
 public:
  // `steps`: the SQL of each step, run on the child's own connection with SQLite's busy wait.
  OtherProcess(const std::string& path, std::vector<std::string> steps) {
    int to_child[2];
    int to_parent[2];
    if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(to_parent[0]);
      sqlite3* db = nullptr;
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
      sqlite3_busy_timeout(db, 5000);
      char command = 0;
      for (const std::string& step : steps) {
        if (::read(to_child[0], &command, 1) != 1) ::_exit(2);
        const char ok = sqlite3_exec(db, step.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
        if (::write(to_parent[1], &ok, 1) != 1) ::_exit(2);
      }
      ::read(to_child[0], &command, 1);  // stay, idle, until told to go
      sqlite3_close(db);
      ::_exit(0);
    }
    ::close(to_child[0]);
    ::close(to_parent[1]);
    command_ = to_child[1];
    answer_ = to_parent[0];
  }

  ~OtherProcess() {
    const char go = 0;
    ::write(command_, &go, 1);
    ::close(command_);
    ::close(answer_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  // Runs the next step; whether it succeeded.
  bool step() {
    const char go = 1;
    char ok = 0;
    if (::write(command_, &go, 1) != 1 || ::read(answer_, &ok, 1) != 1) {
      throw std::runtime_error("the other process is gone");
    }
    return ok == 1;
  }

 private:
  pid_t pid_ = -1;
  int command_ = -1;
  int answer_ = -1;
};

}  // namespace lsp_sweeper::testing
