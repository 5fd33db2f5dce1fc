#include "usage.hpp"

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "lsp_sweeper/report/report.hpp"

namespace lsp_sweeper::cli {

namespace {

std::vector<const CLI::App*> commands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App*) { return true; });
}

std::string command_list(const CLI::App& app) {
  std::string out;
  for (const CLI::App* command : commands(app)) {
    out += (out.empty() ? "" : ", ") + command->get_name();
  }
  return out;
}

bool on_command_line(const std::string& flag, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == flag || (arg.starts_with(flag) && arg.substr(flag.size()).starts_with("="))) {
      return true;
    }
  }
  return false;
}

// " (set by LSP_SWEEPER_X)" or " (set in config file PATH, line N)" when `message` is about
// an option whose value came from there rather than from the command line; empty otherwise.
std::string origin_of_value(const CLI::App& app, const std::string& message, int argc, char** argv,
                            const ConfigOrigins& origins) {
  std::vector<const CLI::App*> scopes = commands(app);
  scopes.push_back(&app);
  for (const CLI::App* scope : scopes) {
    for (const CLI::Option* opt : scope->get_options()) {
      const std::string name = opt->get_name();
      const std::string& envname = opt->get_envname();
      // CLI11 starts a bad value's message with "NAME:" and a failed conversion's with
      // "Could not convert: NAME =".
      const bool about = message.starts_with(name + ":") ||
                         message.starts_with("Could not convert: " + name + " =");
      if (!about || envname.empty() || on_command_line(name, argc, argv)) continue;
      if (const auto it = origins.find(envname); it != origins.end()) {
        return " (set in " + it->second + ")";
      }
      if (std::getenv(envname.c_str()) != nullptr) return " (set by " + envname + ")";
    }
  }
  return {};
}

}  // namespace

int report_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc, char** argv,
                       const ConfigOrigins& origins) {
  if (error.get_exit_code() == 0) return app.exit(error);  // --help, --version

  const CLI::App* command = nullptr;
  std::vector<std::string> unexpected = app.remaining();
  for (const CLI::App* sub : commands(app)) {
    if (sub->parsed()) command = sub;
    const auto rest = sub->remaining();
    unexpected.insert(unexpected.end(), rest.begin(), rest.end());
  }
  std::string message;
  if (command == nullptr && !unexpected.empty() && !unexpected.front().starts_with("-")) {
    message = "unknown command '" + unexpected.front() + "' (commands: " + command_list(app) + ")";
  } else if (command == nullptr && unexpected.empty() &&
             dynamic_cast<const CLI::RequiredError*>(&error)) {
    message = "a command is required: " + command_list(app);
  } else if (!unexpected.empty()) {
    // Before a missing required option, which CLI11 would report first: the unknown one is
    // usually a typo of it.
    message = CLI::ExtrasError(unexpected).what();
  } else {
    message = error.what() + origin_of_value(app, error.what(), argc, argv, origins);
  }
  std::cerr << "lsp-sweeper: " << message << "\nRun `lsp-sweeper "
            << (command != nullptr ? command->get_name() + " " : std::string()) << "--help` for "
            << (command != nullptr ? "its" : "the") << " options.\n";
  return report::kExitUsage;
}

}  // namespace lsp_sweeper::cli
