// lsp-sweeper's command line: wires options to a migrate or a run. No sweep logic lives here.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/report/metrics.hpp"
#include "lsp_sweeper/report/report.hpp"
#include "lsp_sweeper/run/sweep.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/duration.hpp"
#include "lsp_sweeper/util/file.hpp"

namespace {

using namespace lsp_sweeper;

// A configuration problem found after parsing: exit 2 with one clear line.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("lsp-sweeper");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

// The node token comes from the environment or a file, never from argv, where any local
// user could read it in /proc/<pid>/cmdline.
std::string read_node_token(const std::string& token_file) {
  std::string token;
  if (!token_file.empty()) {
    const auto text = util::read_file(token_file);
    if (!text) throw ConfigError("cannot read the node token file " + token_file);
    token = *text;
  } else if (const char* env = std::getenv("LSP_SWEEPER_NODE_TOKEN")) {
    token = env;
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) {
    throw ConfigError("no node token: set LSP_SWEEPER_NODE_TOKEN or pass --node-token-file PATH");
  }
  return token;
}

// Written to a temporary file and renamed, so a reader never sees half a report.
void write_report(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text << '\n' << std::flush;
    return;
  }
  util::write_file_atomically(path, text + '\n');
}

// The previous file's last success is carried over when this run is not one: the file alone
// keeps it, so it survives a database that is down (the very case it must report).
void write_metrics(const std::string& path, const report::RunResult& result) {
  const auto previous = util::read_file(path);
  util::write_file_atomically(
      path, report::to_prometheus(
                result, previous ? report::last_success_timestamp(*previous) : std::nullopt));
}

std::int64_t duration_option(const std::string& flag, const std::string& text) {
  const auto seconds = util::parse_duration_seconds(text);
  if (!seconds) throw CLI::ValidationError(flag, "not a duration (e.g. 90s, 15m, 36h, 14d)");
  return *seconds;
}

struct RunFlags {
  std::string node_url;
  std::string node_token_file;
  std::string db;
  bool dry_run = false;
  std::string report_path;
  std::string metrics_path;
  std::int64_t min_age = 30;
  std::string lookback = "14d";
  std::string waiting_grace = "15m";
  std::uint32_t page_size = 1000;
  double timeout_seconds = 30;
  std::uint64_t max_response_bytes = 64ull * 1024 * 1024;
  std::string ca_file;
  bool allow_insecure_http = false;
};

int run_command(const RunFlags& flags) {
  run::SweepOptions options;
  options.node_url = flags.node_url;
  options.dry_run = flags.dry_run;
  options.min_age = flags.min_age;
  options.lookback = duration_option("--lookback", flags.lookback);
  options.waiting_grace = duration_option("--waiting-grace", flags.waiting_grace);
  options.page_size = flags.page_size;

  const auto started_at = std::chrono::system_clock::now();
  report::RunResult result;
  try {
    node::NodeClientOptions node_options;
    node_options.base_url = flags.node_url;
    node_options.token = read_node_token(flags.node_token_file);
    node_options.timeout =
        std::chrono::milliseconds(static_cast<long>(flags.timeout_seconds * 1000));
    node_options.max_response_bytes = flags.max_response_bytes;
    node_options.ca_file = flags.ca_file;
    node_options.allow_insecure_http = flags.allow_insecure_http;
    // Refuses an insecure node URL before any connection, the database's included; it sends
    // nothing until asked.
    node::NodeClient node(node_options);
    store::PgStore store(flags.db);
    // Before anything else, so an overlapping run asks the node nothing and writes nothing. A
    // dry run writes nothing either: it neither takes the lock nor waits for it.
    if (!flags.dry_run && !store.try_lock_sweep()) {
      spdlog::warn("another lsp-sweeper run holds the sweep lock; nothing done, try again later");
      return report::kExitBusy;
    }
    result = run::run_sweep(node, store, options);
  } catch (const std::exception& e) {
    // No token, the database unreachable, or the lock query failed: run_sweep reports
    // everything after this, and the report and metrics say so as for any failed run.
    result = run::run_not_started(options, started_at, e.what());
  }
  if (!flags.report_path.empty()) write_report(flags.report_path, report::to_json(result).dump(2));
  if (!flags.metrics_path.empty()) write_metrics(flags.metrics_path, result);
  if (result.complete) {
    spdlog::info("{}", report::summary_line(result));
  } else {
    spdlog::error("{}", report::summary_line(result));
  }
  return report::exit_code(result);
}

constexpr const char* kRunExamples = R"(
Examples:
  # See what would be repaired, write nothing:
  LSP_SWEEPER_NODE_TOKEN=... lsp-sweeper run --node-url http://127.0.0.1:3001 \
      --db 'postgresql://lsp_sweeper@db/lsp' --dry-run --report -
  # From cron, token in a file readable only by the sweeper's user:
  lsp-sweeper run --node-url https://node.internal:3001 --node-token-file /etc/lsp-sweeper/token \
      --db 'host=/run/postgresql dbname=lsp' --report /var/lib/lsp-sweeper/last-run.json

Exit codes: 0 nothing left to do; 1 divergences need a person, or a dry run found repairs;
2 the run could not complete (node, database, configuration); 64 usage error; 75 another run
is in progress (it holds the sweep lock): nothing was done, try again later.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lsp-sweeper: repairs the RGB Lightning Node callbacks an LSP missed"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->envname("LSP_SWEEPER_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.footer(R"(
Examples:
  lsp-sweeper migrate --db "$LSP_SWEEPER_DB_URL"
  LSP_SWEEPER_NODE_TOKEN=... lsp-sweeper run --node-url http://127.0.0.1:3001 --dry-run --report -
  lsp-sweeper version

Run `lsp-sweeper COMMAND --help` for a command's options and examples.)");

  RunFlags run_flags;
  auto* run = app.add_subcommand("run", "Sweep once: find missed callbacks and repair them");
  run->option_defaults()->always_capture_default();
  run->add_option("--node-url", run_flags.node_url, "The node's REST API base URL")
      ->envname("LSP_SWEEPER_NODE_URL")
      ->required();
  run->add_option("--node-token-file", run_flags.node_token_file,
                  "File holding the node's bearer token (else env LSP_SWEEPER_NODE_TOKEN)")
      ->check(CLI::ExistingFile);
  run->add_option("--db", run_flags.db, "libpq connection string of the LSP database")
      ->envname("LSP_SWEEPER_DB_URL")
      ->required();
  run->add_flag("--dry-run", run_flags.dry_run, "Plan and report everything, write nothing");
  run->add_option("--report", run_flags.report_path, "Write the JSON report here ('-' = stdout)");
  run->add_option("--metrics-file", run_flags.metrics_path,
                  "Write Prometheus metrics here (node_exporter textfile collector, *.prom)");
  run->add_option("--min-age", run_flags.min_age,
                  "Skip payments the node updated less than this many seconds ago")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--lookback", run_flags.lookback,
                  "How far back to scan settled and failed payments (e.g. 14d, 36h)");
  run->add_option("--waiting-grace", run_flags.waiting_grace,
                  "How long an outbound leg may succeed ahead of the LSP's record before it "
                  "needs a person");
  run->add_option("--page-size", run_flags.page_size, "Payments per node request")
      ->check(CLI::Range(1u, 100000u));
  run->add_option("--timeout", run_flags.timeout_seconds, "Seconds per node request")
      ->check(CLI::Range(0.1, 3600.0));
  run->add_option("--max-response-bytes", run_flags.max_response_bytes,
                  "Largest node response accepted")
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 34));
  run->add_option("--ca-file", run_flags.ca_file,
                  "PEM file of the CA that signs the node's certificate (else the system's)")
      ->check(CLI::ExistingFile);
  run->add_flag("--allow-insecure-http", run_flags.allow_insecure_http,
                "Allow plain http:// to a host other than loopback (the token goes in clear)");
  run->footer(kRunExamples);

  std::string migrate_db;
  bool with_lsp_schema = false;
  auto* migrate = app.add_subcommand("migrate", "Create or upgrade the sweeper's own schema");
  migrate->add_option("--db", migrate_db, "libpq connection string")
      ->envname("LSP_SWEEPER_DB_URL")
      ->required();
  migrate->add_flag("--with-lsp-schema", with_lsp_schema,
                    "Also create the LSP's tables (development, tests, demo)");
  migrate->footer(R"(
Examples:
  lsp-sweeper migrate --db 'postgresql://admin@db/lsp'
  lsp-sweeper migrate --db "$LSP_SWEEPER_DB_URL" --with-lsp-schema   # a scratch database)");

  auto* version = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : report::kExitUsage;
  }

  setup_logging(log_level);
  try {
    if (version->parsed()) {
      std::cout << "lsp-sweeper " << LSP_SWEEPER_VERSION << '\n';
      return 0;
    }
    if (migrate->parsed()) {
      const int v = store::migrate(migrate_db, with_lsp_schema);
      spdlog::info("lsp_sweeper schema at version {}{}", v,
                   with_lsp_schema ? ", LSP tables present" : "");
      return 0;
    }
    return run_command(run_flags);
  } catch (const CLI::ValidationError& e) {
    std::cerr << e.what() << '\n';
    return report::kExitUsage;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return report::kExitIncomplete;
  }
}
