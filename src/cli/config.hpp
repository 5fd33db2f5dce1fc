// The optional configuration file (--config PATH or LSP_SWEEPER_CONFIG): TOML or INI
// `key = value` lines, each key the long name of a command-line option (db, node-url,
// lookback, alert-webhook, ...), at the top or in a section named after a command ([run],
// [check], ...), whose keys apply to that command only.
//
// Precedence is flags > environment > file. CLI11 2.1 itself would let a config file beat
// the environment, so the file is applied as the lowest layer instead: each of its values
// is exported as the option's LSP_SWEEPER_* variable unless that variable is already set,
// and CLI11's own environment handling does the rest.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
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

// The command argv runs: its first argument that is neither an option of `app` nor the value
// of one; nothing when there is none.
std::optional<std::string> command_name(const CLI::App& app, int argc, char** argv);

// Where each environment variable the config file set came from ("config file PATH, line
// N"), so that a bad value is reported where the operator wrote it.
using ConfigOrigins = std::map<std::string, std::string>;

// Applies the file at `path` to the environment as described above, for `command` (the
// sections of other commands are skipped). Refuses a key that no option of `app` (or of the
// section's command) takes from the environment, a token (tokens come from the
// environment or node-token-file / lsp-token-file only), and a world-readable file holding a
// secret (a database URL with a password, or a webhook URL).
ConfigOrigins apply_config_file(const CLI::App& app, const std::string& path,
                                const std::optional<std::string>& command);

}  // namespace lsp_sweeper::cli
