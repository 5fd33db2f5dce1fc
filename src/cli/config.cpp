#include "config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string_view>

#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/file.hpp"

namespace lsp_sweeper::cli {

namespace {

// The environment variable of the option called `--key` in `app` or any of its
// subcommands; empty if none takes one.
std::string envname_for(const CLI::App& app, const std::string& key) {
  const CLI::Option* opt = app.get_option_no_throw("--" + key);
  if (opt != nullptr && !opt->get_envname().empty()) return opt->get_envname();
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    const std::string name = envname_for(*sub, key);
    if (!name.empty()) return name;
  }
  return {};
}

// The 1-based line on which `key` is set in `section` ("" for the top of the file), or 0.
int line_of(const std::string& path, const std::string& section, const std::string& key) {
  std::ifstream in(path);
  std::string current;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    const std::string_view text = std::string_view(line).substr(start);
    if (text.front() == '[') {
      const auto end = text.find(']');
      current = std::string(text.substr(1, end == std::string_view::npos ? 0 : end - 1));
    } else if (const std::string_view rest = text.substr(std::min(key.size(), text.size()));
               current == section && text.starts_with(key) && rest.find('=') != rest.npos &&
               rest.find_first_not_of(" \t") == rest.find('=')) {
      return number;
    }
  }
  return 0;
}

bool holds_secret(const std::string& key, const std::string& value) {
  if (key == "alert-webhook") return true;  // a Slack-style URL is its own credential
  return key == "db" && store::redact_db_url(value) != value;
}

}  // namespace

std::optional<std::string> config_path(int argc, char** argv) {
  constexpr std::string_view kFlag = "--config";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == kFlag && i + 1 < argc) return std::string(argv[i + 1]);
    if (arg.substr(0, kFlag.size() + 1) == "--config=") {
      return std::string(arg.substr(kFlag.size() + 1));
    }
  }
  if (const char* env = std::getenv("LSP_SWEEPER_CONFIG"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  return std::nullopt;
}

std::optional<std::string> command_name(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.starts_with("-")) return arg;
    const CLI::Option* opt = app.get_option_no_throw(arg);
    if (opt != nullptr && opt->get_type_size() != 0) ++i;  // its value is the next argument
  }
  return std::nullopt;
}

ConfigOrigins apply_config_file(const CLI::App& app, const std::string& path,
                                const std::optional<std::string>& command) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw ConfigFileError("config file " + path + " is not a readable file");
  }
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw ConfigFileError("config file " + path + ": " + e.what());
  }
  ConfigOrigins origins;
  for (const auto& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    const std::string key = item.fullname();
    // A section named after a command holds that command's keys; only the command run reads
    // them (e.g. [migrate] db as the tables' owner, [run] db as lsp_sweeper).
    const CLI::App* scope = &app;
    if (item.parents.size() == 1) {
      for (const CLI::App* sub : app.get_subcommands(
               [&](const CLI::App* c) { return c->get_name() == item.parents.front(); })) {
        if (!envname_for(*sub, item.name).empty()) scope = sub;
      }
    }
    const std::string name = scope == &app ? key : item.name;
    if (name.find("token") != std::string::npos && !name.ends_with("-token-file")) {
      throw ConfigFileError("config file " + path + ": '" + key +
                            "': a token is never read from a config file; put it in a file of "
                            "its own and name that file with node-token-file or lsp-token-file");
    }
    const std::string envname = envname_for(*scope, name);
    if (envname.empty()) {
      throw ConfigFileError("config file " + path + ": '" + key +
                            "' is not a configuration key (keys are the long option names, "
                            "e.g. node-url, db, lookback, at the top or in a section named "
                            "after a command, e.g. [run])");
    }
    std::string value;
    for (const auto& input : item.inputs) value += (value.empty() ? "" : " ") + input;
    if (util::readable_by_others(st.st_mode) && holds_secret(name, value)) {
      throw ConfigFileError("config file " + path + " is readable by every user but holds '" + key +
                            "', a secret: chmod o-r " + path +
                            " (or move the secret to the environment)");
    }
    if (scope != &app && scope->get_name() != command) continue;
    if (std::getenv(envname.c_str()) != nullptr) continue;  // the environment beats the file
    ::setenv(envname.c_str(), value.c_str(), /*overwrite=*/1);
    const int line = line_of(path, scope == &app ? "" : scope->get_name(), item.name);
    origins[envname] =
        "config file " + path + (line > 0 ? ", line " + std::to_string(line) : std::string());
  }
  return origins;
}

}  // namespace lsp_sweeper::cli
