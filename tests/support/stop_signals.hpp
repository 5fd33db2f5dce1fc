// SIGINT and SIGTERM for the test servers' programs (node-simulator, lsp-simulator), which
// serve until one arrives and then exit 0.
#pragma once

#include <pthread.h>

#include <csignal>

namespace lsp_sweeper::testing {

// Blocks both signals in the calling thread. Make it before any server thread exists, so that
// every thread inherits the mask and only wait() ever takes them.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  // Returns once SIGINT or SIGTERM arrives.
  void wait() const {
    int received = 0;
    sigwait(&set_, &received);
  }

 private:
  sigset_t set_;
};

}  // namespace lsp_sweeper::testing
