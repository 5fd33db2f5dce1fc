// node-simulator: serves a scenario file over the node's REST API until SIGINT or SIGTERM.
// Prints one line, "listening on URL", once requests are accepted, so a script can wait for
// it. The bearer token comes from NODE_SIMULATOR_TOKEN or --token-file, never from argv,
// where every user of the machine could read it.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "sim/simulator.hpp"
#include "support/stop_signals.hpp"

namespace {

std::string read_token(const std::string& token_file) {
  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in) throw std::runtime_error("cannot read token file " + token_file);
    token.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else if (const char* env = std::getenv("NODE_SIMULATOR_TOKEN")) {
    token = env;
  }
  // Files written by `echo` end in a newline that is not part of the token.
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty()) {
    throw std::runtime_error("no token: set NODE_SIMULATOR_TOKEN or pass --token-file");
  }
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serves a scenario over the RGB Lightning Node's REST API, for tests and demos"};
  std::string scenario_file;
  std::string token_file;
  std::string listen = "127.0.0.1";
  std::uint16_t port = 0;
  app.add_option("--scenario", scenario_file, "Scenario JSON file (see tests/sim/README.md)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--port", port, "Port to listen on; 0 picks a free one")->capture_default_str();
  app.add_option("--listen", listen, "Address to listen on")->capture_default_str();
  std::string request_log;
  app.add_option("--request-log", request_log,
                 "Append one line per answered request (method, target, body) to this file");
  app.add_option("--token-file", token_file,
                 "File holding the bearer token (default: $NODE_SIMULATOR_TOKEN)")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  const lsp_sweeper::testing::StopSignals stop_signals;  // before any server thread

  try {
    const auto token = read_token(token_file);
    lsp_sweeper::sim::NodeSimulator simulator(
        lsp_sweeper::sim::load_scenario(scenario_file, lsp_sweeper::sim::unix_now()), token);
    std::ofstream log;
    if (!request_log.empty()) {
      log.open(request_log, std::ios::app);
      if (!log) throw std::runtime_error("cannot open request log " + request_log);
      // Flushed per line: a benchmark reads it while the simulator keeps running.
      simulator.set_request_log([&log](const std::string& line) { log << line << std::endl; });
    }
    simulator.start(port, listen);
    std::cout << "listening on " << simulator.url() << std::endl;  // flushed: scripts wait for it
    stop_signals.wait();
    simulator.stop();
  } catch (const std::exception& e) {
    std::cerr << "node-simulator: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
