#include "config.hpp"

#include <sys/stat.h>

#include <cstdlib>
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

bool holds_secret(const std::string& key, const std::string& value) {
  if (key == "alert-webhook") return true;  // a Slack-style URL is its own credential
  return key == "db" && store::redact_connection_string(value) != value;
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

void apply_config_file(const CLI::App& app, const std::string& path) {
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
  for (const auto& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    const std::string key = item.fullname();
    if (key.find("token") != std::string::npos && key != "node-token-file") {
      throw ConfigFileError("config file " + path + ": '" + key +
                            "': the node token is never read from a config file; put it in a "
                            "file of its own and name that file with node-token-file");
    }
    const std::string envname = envname_for(app, key);
    if (envname.empty()) {
      throw ConfigFileError("config file " + path + ": '" + key +
                            "' is not a configuration key (keys are the long option names, "
                            "e.g. node-url, db, lookback)");
    }
    std::string value;
    for (const auto& input : item.inputs) value += (value.empty() ? "" : " ") + input;
    if (util::readable_by_others(st.st_mode) && holds_secret(key, value)) {
      throw ConfigFileError("config file " + path + " is readable by every user but holds '" + key +
                            "', a secret: chmod o-r " + path +
                            " (or move the secret to the environment)");
    }
    ::setenv(envname.c_str(), value.c_str(), /*overwrite=*/0);
  }
}

}  // namespace lsp_sweeper::cli
