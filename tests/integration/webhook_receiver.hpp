// A webhook receiver on loopback for the alert tests: real HTTP (cpp-httplib), answering
// every POST to `path` with `status` and keeping each body it received.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lsp_sweeper::testing {

class WebhookReceiver {
 public:
  WebhookReceiver(std::string path, int status);
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  std::string url() const;
  std::vector<std::string> bodies() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lsp_sweeper::testing
