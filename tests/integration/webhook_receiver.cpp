#include "integration/webhook_receiver.hpp"

#include <httplib.h>

#include <mutex>
#include <stdexcept>
#include <thread>

namespace lsp_sweeper::testing {

struct WebhookReceiver::Impl {
  httplib::Server server;
  std::thread thread;
  std::string path;
  int port = 0;
  mutable std::mutex mutex;
  std::vector<std::string> bodies;
};

WebhookReceiver::WebhookReceiver(std::string path, int status) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->server.set_keep_alive_timeout(1);
  impl_->server.Post(impl_->path, [impl = impl_.get(), status](const httplib::Request& req,
                                                               httplib::Response& res) {
    const std::lock_guard lock(impl->mutex);
    impl->bodies.push_back(req.body);
    res.status = status;
  });
  impl_->port = impl_->server.bind_to_any_port("127.0.0.1");
  if (impl_->port <= 0) throw std::runtime_error("webhook receiver: cannot listen");
  impl_->thread = std::thread([impl = impl_.get()] { impl->server.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs; the socket already listens meanwhile.
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

WebhookReceiver::~WebhookReceiver() {
  impl_->server.stop();
  impl_->thread.join();
}

std::string WebhookReceiver::url() const {
  return "http://127.0.0.1:" + std::to_string(impl_->port) + impl_->path;
}

std::vector<std::string> WebhookReceiver::bodies() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->bodies;
}

}  // namespace lsp_sweeper::testing
