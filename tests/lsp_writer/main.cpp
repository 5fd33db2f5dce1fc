// lsp-writer: see README.md beside this file. Prints one JSON object; exit 1 only for usage or
// setup errors, never for failed writes (those are the figures).
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "lsp_writer/writer.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Writes to the LSP's SQLite file exactly as utexo-lsp does and reports the waits"};
  lsp_writer::Options options;
  std::string hashes;
  app.add_option("--db", options.db, "Existing SQLite file with the LSP's tables")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--duration", options.duration_s, "Stop after this many seconds")
      ->check(CLI::PositiveNumber);
  app.add_option("--count", options.count, "Stop after this many write transactions")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", options.threads, "Writer threads, one connection each")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--hashes", hashes,
                 "Callbacks to fire once each: `claimable <hash> <amount_msat> <deadline>` or "
                 "`payment_sent <hash> <preimage>` per line")
      ->check(CLI::ExistingFile);
  app.add_flag("--claim-jobs", options.claim_jobs, "Also run the LSP's outbox claim loop");
  app.add_flag("--background-writes", options.background_writes,
               "Keep reserving invoices under an order of its own (needs --duration/--count)");
  app.add_option("--interval-ms", options.interval_ms, "Pause after each operation")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--busy-timeout-ms", options.busy_timeout_ms,
                 "How long a locked file is waited for (the LSP's driver: 5000)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 1;
  }

  try {
    if (!hashes.empty()) {
      std::ifstream in(hashes);
      if (!in) throw lsp_writer::SetupError("cannot read " + hashes);
      options.callbacks = lsp_writer::parse_callbacks(in);
    }
    std::cout << lsp_writer::run(options).dump() << '\n';
  } catch (const lsp_writer::SetupError& e) {
    std::cerr << "lsp-writer: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
