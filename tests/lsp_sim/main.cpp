// lsp-simulator: serves the LSP's two payment callbacks (see README.md beside this file) over a
// database until SIGINT or SIGTERM. Prints one line, "listening on URL", once requests are
// accepted, so a script can wait for it. Both tokens come from the environment, never from
// argv, where every user of the machine could read them.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

#include "lsp_sim/server.hpp"
#include "support/stop_signals.hpp"

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serves utexo-lsp's payment callbacks over its tables, for tests and demos"};
  lsp_sim::Options options;
  std::uint16_t port = 0;
  app.add_option("--db", options.db_url,
                 "The LSP's database: sqlite:PATH or a libpq connection string")
      ->required();
  app.add_option("--node-url", options.node_url, "The node whose GET /networkinfo gives the height")
      ->required();
  app.add_option("--port", port, "Port to listen on (127.0.0.1); 0 picks a free one")
      ->capture_default_str();
  app.add_option("--min-final-cltv-expiry-delta", options.min_final_cltv_expiry_delta,
                 "APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  options.token = env("LSP_SIMULATOR_TOKEN");
  options.node_token = env("LSP_SIMULATOR_NODE_TOKEN");
  if (options.token.empty()) {
    std::cerr << "lsp-simulator: set LSP_SIMULATOR_TOKEN (the LSP's APAY_BEARER_TOKEN)\n";
    return 1;
  }

  const lsp_sweeper::testing::StopSignals stop_signals;  // before any server thread

  try {
    lsp_sim::Server server(options, port);
    std::cout << "listening on " << server.url() << std::endl;  // flushed: scripts wait for it
    stop_signals.wait();
    server.stop();
  } catch (const std::exception& e) {
    std::cerr << "lsp-simulator: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
