// Usage errors (exit 64) worded for the operator: an unknown command named with the valid
// ones, an unknown option reported before any missing one, and a bad value traced to where
// it was set (the environment, or the config file's line) when not on the command line.
#pragma once

#include <CLI/CLI.hpp>

#include "config.hpp"

namespace lsp_sweeper::cli {

// Prints what `error`, thrown by app.parse(argc, argv), has to say and returns the exit
// code: 0 for --help and --version (printed by CLI11 to stdout), 64 otherwise.
int report_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv,
                       const ConfigOrigins& origins);

}  // namespace lsp_sweeper::cli
