// The optional configuration file (--config PATH or LSP_SWEEPER_CONFIG): TOML or INI
// `key = value` lines, each key the long name of a command-line option (db, node-url,
// lookback, alert-webhook, ...).
//
// Precedence is flags > environment > file. CLI11 2.1 itself would let a config file beat
// the environment, so the file is applied as the lowest layer instead: each of its values
// is exported as the option's LSP_SWEEPER_* variable unless that variable is already set,
// and CLI11's own environment handling does the rest.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace lsp_sweeper::cli {

// A file that cannot be used as it is; the message says why and what to do.
struct ConfigFileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The config file named by `--config PATH`, `--config=PATH` or LSP_SWEEPER_CONFIG, if any.
// Read before parsing, since the file's values must be in place when CLI11 reads the
// environment.
std::optional<std::string> config_path(int argc, char** argv);

// Applies the file at `path` to the environment as described above. Refuses a key that no
// option of `app` takes from the environment, a node token (tokens come from
// LSP_SWEEPER_NODE_TOKEN or node-token-file only), and a world-readable file holding a
// secret (a database URL with a password, or a webhook URL).
void apply_config_file(const CLI::App& app, const std::string& path);

}  // namespace lsp_sweeper::cli
