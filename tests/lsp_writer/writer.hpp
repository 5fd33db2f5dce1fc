// lsp-writer: does to the LSP's SQLite file what utexo-lsp does (its payment callbacks, its
// outbox claim loop, its ordinary invoice reservations), so that tests and benchmarks can run
// it beside a sweeper and see whether the LSP's writes wait or are lost.
#pragma once

#include <cstdint>
#include <istream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lsp_writer {

// A problem with the options or the file before any write: exit 1, unlike a failed write.
class SetupError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One live callback of the LSP, as the node would deliver it.
struct Callback {
  enum class Kind { claimable, payment_sent };
  Kind kind = Kind::claimable;
  std::string payment_hash;
  std::int64_t amount_msat = 0;  // claimable
  std::int64_t deadline = 0;     // claimable: claim_deadline_height
  std::string preimage;          // payment_sent
};

// Lines `claimable <hash> <amount_msat> <deadline>` or `payment_sent <hash> <preimage>`;
// blank lines and lines starting with '#' are skipped. Throws SetupError naming the line.
std::vector<Callback> parse_callbacks(std::istream& in);

struct Options {
  std::string db;
  std::optional<double> duration_s;
  std::optional<std::int64_t> count;  // write transactions (callbacks + background) in all
  int threads = 2;
  std::vector<Callback> callbacks;  // each fired once, in order, by whichever thread is free
  bool claim_jobs = false;
  bool background_writes = false;
  int interval_ms = 0;
  int busy_timeout_ms = 5000;  // the LSP's driver (mattn/go-sqlite3) default
};

// Throws SetupError when the run could not stop by itself.
void check_bounded(const Options& options);

// Runs to the end and returns the figures; throws SetupError when the file cannot be opened
// or lacks the LSP's tables. Failed writes are figures, not exceptions.
nlohmann::json run(const Options& options);

}  // namespace lsp_writer
