// lsp-sweeper's command line: wires options to a migrate or a run. No sweep logic lives here.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>

#include "config.hpp"
#include "logging.hpp"
#include "lsp_sweeper/lsp/callbacks.hpp"
#include "lsp_sweeper/node/client.hpp"
#include "lsp_sweeper/report/alert.hpp"
#include "lsp_sweeper/report/history.hpp"
#include "lsp_sweeper/report/report.hpp"
#include "lsp_sweeper/run/check.hpp"
#include "lsp_sweeper/run/sweep.hpp"
#include "lsp_sweeper/store/store.hpp"
#include "lsp_sweeper/util/duration.hpp"
#include "lsp_sweeper/util/file.hpp"
#include "outputs.hpp"
#include "usage.hpp"
#include "validators.hpp"

namespace {

using namespace lsp_sweeper;

// A configuration problem found after parsing: exit 2 with one clear line.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A token comes from the environment or a file, never from argv, where any local user could
// read it in /proc/<pid>/cmdline. A token file others can read is refused, as a config file
// holding a secret is. `whose` names it in messages ("node", "LSP").
std::string read_token(const std::string& token_file, const char* env_name, const char* file_flag,
                       const std::string& whose) {
  std::string token;
  if (!token_file.empty()) {
    try {
      token = util::read_secret_file(token_file);
    } catch (const util::FileError& e) {
      throw ConfigError(whose + " token file: " + e.what());
    }
  } else if (const char* env = std::getenv(env_name)) {
    token = env;
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty() && !token_file.empty()) {
    throw ConfigError(whose + " token file " + token_file + " is empty");
  }
  if (token.empty()) {
    throw ConfigError("no " + whose + " token: set " + env_name + " or pass " + file_flag +
                      " PATH");
  }
  return token;
}

// Checked when parsed (cli::duration, cli::positive_duration).
std::int64_t seconds_of(const std::string& duration) {
  return util::parse_duration_seconds(duration).value();
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
  std::string stuck_after = "30m";
  std::int64_t claim_min_blocks = 102;
  std::uint32_t page_size = 1000;
  std::string lookup = "auto";
  std::int64_t targeted_max = 200;
  bool whole_window = false;
  double timeout_seconds = 30;
  std::uint64_t max_response_bytes = 64ull * 1024 * 1024;
  std::vector<std::string> alert_webhooks;
  std::string realert_after = "6h";
  std::string ca_file;
  bool allow_insecure_http = false;
  std::string apply = "db";
  std::string lsp_url;
  std::string lsp_token_file;
};

constexpr const char* kDbHelp =
    "The LSP's database: sqlite:PATH for its SQLite file, else a libpq connection string";

// The options `run` and `check` share: where the node and the database are, and how to ask.
void add_connection_options(CLI::App* command, RunFlags& flags) {
  command->add_option("--node-url", flags.node_url, "The node's REST API base URL")
      ->envname("LSP_SWEEPER_NODE_URL")
      ->required()
      ->check(cli::base_url());
  command
      ->add_option("--node-token-file", flags.node_token_file,
                   "File holding the node's bearer token (else env LSP_SWEEPER_NODE_TOKEN)")
      ->envname("LSP_SWEEPER_NODE_TOKEN_FILE");  // a missing file is reported when read
  command->add_option("--db", flags.db, kDbHelp)->envname("LSP_SWEEPER_DB_URL")->required();
  command->add_option("--timeout", flags.timeout_seconds, "Seconds per node request")
      ->envname("LSP_SWEEPER_TIMEOUT")
      ->check(CLI::Range(0.1, 3600.0));
  command
      ->add_option("--ca-file", flags.ca_file,
                   "PEM file of the CA that signs the node's (and the LSP's) certificate (else "
                   "the system's)")
      ->envname("LSP_SWEEPER_CA_FILE")
      ->check(CLI::ExistingFile);
  command
      ->add_flag("--allow-insecure-http", flags.allow_insecure_http,
                 "Allow plain http:// to a node, LSP or alert webhook that is not on loopback (the "
                 "token or the webhook URL then goes in clear)")
      ->envname("LSP_SWEEPER_ALLOW_INSECURE_HTTP");
  command
      ->add_option("--apply", flags.apply,
                   "How repairs are applied: db (the sweeper's own SQL on the LSP's tables) or "
                   "lsp-callbacks (each missed callback replayed to the LSP's own endpoint)")
      ->envname("LSP_SWEEPER_APPLY")
      ->check(CLI::IsMember({"db", "lsp-callbacks"}));
  command
      ->add_option("--lsp-url", flags.lsp_url,
                   "The LSP's base URL (its SERVER_ADDR), for --apply lsp-callbacks")
      ->envname("LSP_SWEEPER_LSP_URL")
      ->check(cli::base_url());
  command
      ->add_option("--lsp-token-file", flags.lsp_token_file,
                   "File holding the LSP's APAY_BEARER_TOKEN (else env LSP_SWEEPER_LSP_TOKEN), "
                   "for --apply lsp-callbacks")
      ->envname("LSP_SWEEPER_LSP_TOKEN_FILE");
}

ApplyMode apply_mode(const RunFlags& flags) {
  return parse_apply_mode(flags.apply).value();  // checked when parsed
}

// The LSP's endpoints for --apply lsp-callbacks, or nothing for --apply db (where --lsp-url is
// refused: a URL that would never be called hides a mistake).
std::unique_ptr<lsp::LspClient> lsp_client(const RunFlags& flags) {
  if (apply_mode(flags) == ApplyMode::Database) {
    if (!flags.lsp_url.empty()) {
      throw ConfigError("--lsp-url is used only with --apply lsp-callbacks");
    }
    return nullptr;
  }
  if (flags.lsp_url.empty()) throw ConfigError("--apply lsp-callbacks needs --lsp-url");
  if (node::is_insecure_remote_http(flags.lsp_url) && !flags.allow_insecure_http) {
    throw ConfigError("refusing plain http:// to the LSP at " + node::redact_url(flags.lsp_url) +
                      ": its token would go in clear; use https:// or --allow-insecure-http");
  }
  lsp::LspClientOptions options;
  options.base_url = flags.lsp_url;
  options.token =
      read_token(flags.lsp_token_file, "LSP_SWEEPER_LSP_TOKEN", "--lsp-token-file", "LSP");
  options.timeout = std::chrono::milliseconds(static_cast<long>(flags.timeout_seconds * 1000));
  options.ca_file = flags.ca_file;
  return std::make_unique<lsp::LspClient>(std::move(options));
}

node::NodeClientOptions node_client_options(const RunFlags& flags) {
  node::NodeClientOptions options;
  options.base_url = flags.node_url;
  options.token =
      read_token(flags.node_token_file, "LSP_SWEEPER_NODE_TOKEN", "--node-token-file", "node");
  options.timeout = std::chrono::milliseconds(static_cast<long>(flags.timeout_seconds * 1000));
  options.max_response_bytes = flags.max_response_bytes;
  options.ca_file = flags.ca_file;
  options.allow_insecure_http = flags.allow_insecure_http;
  return options;
}

int run_command(const RunFlags& flags) {
  run::SweepOptions options;
  options.node_url = flags.node_url;
  options.dry_run = flags.dry_run;
  options.apply = apply_mode(flags);
  options.min_age = flags.min_age;
  options.lookback = seconds_of(flags.lookback);
  options.waiting_grace = seconds_of(flags.waiting_grace);
  options.stuck_after = seconds_of(flags.stuck_after);
  options.claim_min_blocks = flags.claim_min_blocks;
  options.page_size = flags.page_size;
  options.lookup = flags.lookup == "list"       ? run::LookupMode::List
                   : flags.lookup == "targeted" ? run::LookupMode::Targeted
                                                : run::LookupMode::Auto;
  options.targeted_max = flags.targeted_max;
  options.narrow = !flags.whole_window;
  options.alert_webhooks = flags.alert_webhooks;
  options.realert_after = seconds_of(flags.realert_after);
  // Only for a person watching: under cron stderr is a file or a pipe, and stays clean.
  const bool progress = isatty(STDERR_FILENO) == 1;
  if (progress) {
    options.on_progress = [](const report::NodeSummary& node) {
      std::cerr << '\r' << report::progress_line(node) << "\x1b[K" << std::flush;
    };
  }

  const auto started_at = std::chrono::system_clock::now();
  report::RunResult result;
  store::Backend db;  // open past the outputs: the run's row comes last
  try {
    report::refuse_insecure_webhooks(flags.alert_webhooks, flags.allow_insecure_http);
    const node::NodeClientOptions node_options = node_client_options(flags);
    // Refuses an insecure node URL (as the line above does a webhook) before any connection,
    // the database's included; it sends nothing until asked.
    node::NodeClient node(node_options);
    const std::unique_ptr<lsp::LspClient> lsp = lsp_client(flags);
    // A dry run opens the database read-only: it cannot change a byte of it.
    db = store::open_backend(flags.db,
                             flags.dry_run ? store::Access::ReadOnly : store::Access::ReadWrite);
    // Before anything else, so an overlapping run asks the node nothing and writes nothing. A
    // dry run writes nothing either: it neither takes the lock nor waits for it.
    if (!flags.dry_run && !db.ledger->try_lock_sweep()) {
      spdlog::warn("another lsp-sweeper run holds the sweep lock; nothing done, try again later");
      return report::kExitBusy;
    }
    result = run::run_sweep(node, db, options, lsp.get());
  } catch (const std::exception& e) {
    // No token, the database unreachable, or the lock query failed: run_sweep reports
    // everything after this, and the report and metrics say so as for any failed run.
    result = run::run_not_started(options, started_at, e.what());
  }
  if (progress && result.node.pages > 0) std::cerr << '\n';
  cli::write_outputs(flags.report_path, flags.metrics_path, result);
  if (db.ledger) run::record_outcome(*db.ledger, result);
  if (result.complete && result.output_failures.empty()) {
    spdlog::info("{}", report::summary_line(result));
  } else {
    spdlog::error("{}", report::summary_line(result));
  }
  return report::exit_code(result);
}

int check_command(const RunFlags& flags) {
  node::NodeClient node(node_client_options(flags));
  const std::unique_ptr<lsp::LspClient> lsp = lsp_client(flags);
  std::vector<util::Check> checks = run::check_node(node, node::redact_url(flags.node_url));
  const std::vector<util::Check> database = store::check_database(flags.db, apply_mode(flags));
  checks.insert(checks.end(), database.begin(), database.end());
  if (lsp) checks.push_back(lsp::check_endpoint(*lsp, node::redact_url(flags.lsp_url)));
  for (const util::Check& c : checks) std::cout << util::format(c) << '\n';
  std::cout << std::flush;
  return util::all_pass(checks) ? report::kExitClean : report::kExitNeedsAttention;
}

constexpr const char* kRunExamples = R"(
Examples:
  # See what would be repaired, write nothing:
  LSP_SWEEPER_NODE_TOKEN=... lsp-sweeper run --node-url http://127.0.0.1:3001 \
      --db sqlite:/var/lib/lsp/utexo_lsp.db --dry-run --report -
  # From cron, token in a file readable only by the sweeper's user:
  lsp-sweeper run --node-url https://node.internal:3001 --node-token-file /etc/lsp-sweeper/token \
      --db 'host=/run/postgresql dbname=lsp' --report /var/lib/lsp-sweeper/last-run.json

Exit codes: 0 nothing left to do; 1 divergences need a person, a dry run found repairs, or an
alert could not be delivered; 2 the run could not complete (node, database, configuration),
or the report or metrics file could not be written; 64 usage error; 75 try again later:
another run is in progress (it holds the sweep lock, nothing was done), or the node kept
answering 403 ChangingState.)";

constexpr const char* kGlobalOptions = R"(

Global options, before or after the command (see lsp-sweeper --help):
  --config PATH        TOML/INI file of option = value lines (env LSP_SWEEPER_CONFIG)
  --log-level LEVEL    trace, debug, info, warn, error (env LSP_SWEEPER_LOG_LEVEL)
  --log-format FORMAT  text, or json (env LSP_SWEEPER_LOG_FORMAT))";

}  // namespace

int main(int argc, char** argv) {
  cli::guard_standard_streams();
  CLI::App app{"lsp-sweeper: repairs the RGB Lightning Node callbacks an LSP missed"};
  app.require_subcommand(1);
  app.fallthrough();        // global options (--config, --log-*) may follow the command too
  std::string config_file;  // read before parsing, by cli::config_path; declared for --help
  app.add_option("--config", config_file,
                 "TOML/INI file of option = value lines (flags > environment > file)")
      ->envname("LSP_SWEEPER_CONFIG");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->envname("LSP_SWEEPER_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json (one object per line)")
      ->envname("LSP_SWEEPER_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));
  app.footer(R"(
Examples:
  lsp-sweeper migrate --db "$LSP_SWEEPER_DB_URL"
  LSP_SWEEPER_NODE_TOKEN=... lsp-sweeper run --node-url http://127.0.0.1:3001 --dry-run --report -
  lsp-sweeper check --node-url http://127.0.0.1:3001 --db "$LSP_SWEEPER_DB_URL"
  lsp-sweeper version

Run `lsp-sweeper COMMAND --help` for a command's options and examples.)");

  RunFlags run_flags;
  auto* run = app.add_subcommand("run", "Sweep once: find missed callbacks and repair them");
  run->option_defaults()->always_capture_default();
  add_connection_options(run, run_flags);
  run->add_flag("--dry-run", run_flags.dry_run, "Plan and report everything, write nothing");
  run->add_option("--report", run_flags.report_path, "Write the JSON report here ('-' = stdout)")
      ->envname("LSP_SWEEPER_REPORT");
  run->add_option("--metrics-file", run_flags.metrics_path,
                  "Write Prometheus metrics here (node_exporter textfile collector, *.prom)")
      ->envname("LSP_SWEEPER_METRICS_FILE");
  run->add_option("--min-age", run_flags.min_age,
                  "Skip payments the node updated less than this many seconds ago")
      ->envname("LSP_SWEEPER_MIN_AGE")
      ->check(cli::non_negative());
  run->add_option("--lookback", run_flags.lookback,
                  "How far back to scan settled and failed payments (e.g. 14d, 36h)")
      ->envname("LSP_SWEEPER_LOOKBACK")
      ->check(cli::positive_duration(
          "0 would list no succeeded, failed or cancelled payment, and no payment_sent "
          "callback would ever be repaired"));
  run->add_option("--waiting-grace", run_flags.waiting_grace,
                  "How long an outbound leg may succeed ahead of the LSP's record before it "
                  "needs a person")
      ->envname("LSP_SWEEPER_WAITING_GRACE")
      ->check(cli::duration());
  run->add_option("--stuck-after", run_flags.stuck_after,
                  "How long an outbox job may keep failing, or stay locked past its lock, "
                  "before it is reported stuck (e.g. 30m, 2h)")
      ->envname("LSP_SWEEPER_STUCK_AFTER")
      ->check(cli::positive_duration("0 would report every job the LSP is still retrying"));
  run->add_option("--claim-min-blocks", run_flags.claim_min_blocks,
                  "An APay claimable is repaired only with more than this many blocks left "
                  "before its deadline: the LSP's APAY_INBOUND_MIN_FINAL_CLTV_EXPIRY_DELTA - 42")
      ->envname("LSP_SWEEPER_CLAIM_MIN_BLOCKS")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{65535}));
  run->add_option("--page-size", run_flags.page_size, "Payments per node request")
      ->envname("LSP_SWEEPER_PAGE_SIZE")
      ->check(CLI::Range(1u, 100000u));
  run->add_option("--lookup", run_flags.lookup,
                  "How to ask the node: list (filtered listings), targeted (POST /getpayment per "
                  "record awaiting the node), or auto (per listing: targeted when at most "
                  "--targeted-max records can need it)")
      ->envname("LSP_SWEEPER_LOOKUP")
      ->check(CLI::IsMember({"auto", "list", "targeted"}));
  run->add_option("--targeted-max", run_flags.targeted_max,
                  "Most records awaiting the node for which --lookup auto looks payments up "
                  "one by one instead of listing")
      ->envname("LSP_SWEEPER_TARGETED_MAX")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1000000}));
  run->add_flag("--whole-window", run_flags.whole_window,
                "List every listing over its whole window (--lookback; held HODL payments "
                "unbounded) and skip none, instead of only back to the oldest record that can "
                "need it: the full scan a narrowed run must agree with");
  run->add_option("--max-response-bytes", run_flags.max_response_bytes,
                  "Largest node response accepted")
      ->envname("LSP_SWEEPER_MAX_RESPONSE_BYTES")
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 34));
  run->add_option("--alert-webhook", run_flags.alert_webhooks,
                  "POST a JSON alert here (repeatable; env: space-separated). Prefer the "
                  "environment: argv is visible to every local user")
      ->envname("LSP_SWEEPER_ALERT_WEBHOOK")
      ->delimiter(' ')
      ->check(cli::webhook_url());
  run->add_option("--realert-after", run_flags.realert_after,
                  "Remind the webhooks of a divergence still open after this long (e.g. 6h)")
      ->envname("LSP_SWEEPER_REALERT_AFTER")
      ->check(cli::duration());
  run->footer(kRunExamples);

  RunFlags check_flags;
  auto* check = app.add_subcommand(
      "check", "Pre-flight after a deploy: node, token, database, schema, privileges");
  check->option_defaults()->always_capture_default();
  add_connection_options(check, check_flags);
  check->footer(R"(
One line per check (ok, FAIL, or warn for more privileges than the sweeper needs).
Exit codes: 0 every check passed; 1 a check failed; 2 configuration (e.g. no token); 64 usage.

Example:
  LSP_SWEEPER_NODE_TOKEN=... lsp-sweeper check --node-url https://node.internal:3001 \
      --db 'postgresql://lsp_sweeper@db/lsp')");

  std::string migrate_db;
  bool with_lsp_schema = false;
  auto* migrate = app.add_subcommand("migrate", "Create or upgrade the sweeper's own schema");
  migrate->add_option("--db", migrate_db, kDbHelp)->envname("LSP_SWEEPER_DB_URL")->required();
  migrate->add_flag("--with-lsp-schema", with_lsp_schema,
                    "Also create the LSP's tables (development, tests, demo)");
  migrate->footer(R"(
Examples:
  lsp-sweeper migrate --db sqlite:/var/lib/lsp/utexo_lsp.db
  lsp-sweeper migrate --db 'postgresql://admin@db/lsp'
  lsp-sweeper migrate --db sqlite:/tmp/scratch.db --with-lsp-schema   # a scratch database)");

  std::string history_db;
  int history_last = 20;
  bool history_as_json = false;
  auto* history = app.add_subcommand("history", "Show recent runs and the open divergences");
  history->add_option("--db", history_db, kDbHelp)->envname("LSP_SWEEPER_DB_URL")->required();
  history->add_option("--last", history_last, "How many runs, newest first")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  history->add_flag("--json", history_as_json, "JSON instead of a table");
  history->footer(R"(
Examples:
  lsp-sweeper history --db "$LSP_SWEEPER_DB_URL"
  lsp-sweeper history --last 100 --json | jq '.runs[] | select(.status != "ok")')");

  auto* version = app.add_subcommand("version", "Print the version (as --version does)");
  version->footer("\nExample:\n  lsp-sweeper version");
  app.set_version_flag("--version", std::string("lsp-sweeper ") + LSP_SWEEPER_VERSION);
  // A command's --help lists only its own options; these work with every command.
  for (CLI::App* command : {run, check, migrate, history, version}) {
    command->footer(command->get_footer() + kGlobalOptions);
  }

  cli::ConfigOrigins config_origins;
  try {
    if (const auto path = cli::config_path(argc, argv)) {
      config_origins = cli::apply_config_file(app, *path, cli::command_name(app, argc, argv));
    }
  } catch (const cli::ConfigFileError& e) {
    std::cerr << "lsp-sweeper: " << e.what() << '\n';
    return report::kExitIncomplete;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli::report_parse_error(app, e, argc, argv, config_origins);
  }

  cli::setup_logging(log_level, log_format);
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
    if (history->parsed()) {
      store::Backend db = store::open_backend(history_db, store::Access::ReadOnly);
      const auto runs = run::recent_runs_marking_abandoned(*db.ledger, history_last);
      const auto open = db.ledger->open_divergences();
      std::cout << (history_as_json ? report::history_json(runs, open).dump(2) + "\n"
                                    : report::history_table(runs, open))
                << std::flush;
      return 0;
    }
    if (check->parsed()) return check_command(check_flags);
    return run_command(run_flags);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return report::kExitIncomplete;
  }
}
