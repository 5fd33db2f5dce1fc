// The run's outputs end to end: where they may go (a file, a link, /dev/null, stdout), and a
// failed one making every record of the run (report, metrics, lsp_sweeper.runs, summary line)
// say the same exit code, with the reason logged.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "integration/sweep_fixture.hpp"
#include "lsp_sweeper/util/file.hpp"
#include "support/devices.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;
namespace fs = std::filesystem;

class Outputs : public SweepFixture {
 protected:
  void SetUp() override {
    // A forged preimage: the run completes with exit 1, so a failed output visibly turns it
    // into 2.
    const Secret forged = secret('f');
    seed_apay(forged.hash, "outbound_paid", 2000000);
    serve(json::array({outbound_succeeded(forged.hash, secret('g').preimage)}));
    char dir_template[] = "/tmp/lsp-sweeper-outputs.XXXXXX";
    dir_ = mkdtemp(dir_template);
  }
  void TearDown() override { fs::remove_all(dir_); }

  ProcessResult run(const std::vector<std::string>& args) {
    std::vector<std::string> argv{LSP_SWEEPER_BINARY, "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, {{"LSP_SWEEPER_NODE_URL", node_->url()},
                              {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
                              {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  }
  // `lsp-sweeper run` under /bin/sh, for redirections run_process cannot make.
  ProcessResult run_in_shell(const std::string& redirection) {
    return run_process(
        {"/bin/sh", "-c",
         "exec '" + std::string(LSP_SWEEPER_BINARY) + "' run --report - " + redirection},
        {{"LSP_SWEEPER_NODE_URL", node_->url()},
         {"LSP_SWEEPER_DB_URL", db_.uri_as_sweeper()},
         {"LSP_SWEEPER_NODE_TOKEN", kToken}});
  }

  int stored_exit_code() { return db_.query_value<int>("SELECT exit_code FROM lsp_sweeper.runs"); }
  int stored_report_exit_code() {
    return db_.query_value<int>(db_.is_sqlite()
                                    ? "SELECT json_extract(report, '$.exit_code') FROM lsp_sweeper.runs"
                                    : "SELECT (report->>'exit_code')::int FROM lsp_sweeper.runs");
  }
  static std::optional<int> metrics_exit_code(const std::string& path) {
    const std::string text = util::read_file(path).value_or("");
    const std::string key = "\nlsp_sweeper_run_exit_code ";
    const auto at = text.find(key);
    if (at == std::string::npos) return std::nullopt;
    return std::stoi(text.substr(at + key.size()));
  }
  static json read_report(const std::string& path) {
    return json::parse(util::read_file(path).value_or("null"));
  }
  // The closing line, at error level, carrying the run's exit code.
  static void expect_summary(const ProcessResult& r, int code) {
    const auto at = r.err.find("sweep complete: ");
    ASSERT_NE(at, std::string::npos) << r.err;
    const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
    EXPECT_NE(line.find(" exit=" + std::to_string(code)), std::string::npos) << line;
    EXPECT_NE(r.err.rfind("error", at), std::string::npos) << r.err;
  }

  fs::path dir_;
};

TEST_F(Outputs, CompleteRunWithBothOutputsAgreesOnExitOne) {
  const std::string report = dir_ / "report.json", metrics = dir_ / "metrics.prom";
  const ProcessResult r = run({"--report", report, "--metrics-file", metrics});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(read_report(report)["exit_code"], 1);
  EXPECT_EQ(read_report(report)["output_failures"], json::array());
  EXPECT_EQ(metrics_exit_code(metrics), 1);
  EXPECT_EQ(stored_exit_code(), 1);
}

TEST_F(Outputs, ReportIntoADirectoryIsLoggedAndEveryRecordSaysExitTwo) {
  const std::string metrics = dir_ / "metrics.prom";
  const ProcessResult r = run({"--report", dir_.string(), "--metrics-file", metrics});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot write the report to " + dir_.string() + ": " + dir_.string() +
                       " is a directory"),
            std::string::npos)
      << r.err;
  expect_summary(r, 2);
  EXPECT_EQ(metrics_exit_code(metrics), 2);
  EXPECT_EQ(stored_exit_code(), 2);
  EXPECT_EQ(stored_report_exit_code(), 2);
  EXPECT_EQ(db_.query_value<std::string>("SELECT status FROM lsp_sweeper.runs"), "failed");
  EXPECT_EQ(db_.query_value<int>(
                db_.is_sqlite()
                    ? "SELECT json_array_length(report, '$.output_failures') FROM lsp_sweeper.runs"
                    : "SELECT jsonb_array_length(report->'output_failures') FROM lsp_sweeper.runs"),
            1);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), {}), 1) << "no temporary file left";
}

TEST_F(Outputs, ReportInAMissingDirectoryGivesTheSystemsReason) {
  const std::string report = dir_ / "missing" / "report.json";
  const ProcessResult r = run({"--report", report});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot write the report to " + report), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  expect_summary(r, 2);
  EXPECT_EQ(stored_exit_code(), 2);
}

TEST_F(Outputs, FailedMetricsFileMakesTheReportSayExitTwo) {
  const std::string report = dir_ / "report.json";
  const std::string metrics = dir_ / "missing" / "metrics.prom";
  const ProcessResult r = run({"--report", report, "--metrics-file", metrics});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot write the metrics file to " + metrics), std::string::npos) << r.err;
  const json written = read_report(report);
  EXPECT_EQ(written["exit_code"], 2);
  EXPECT_EQ(written["complete"], true) << "the sweep itself completed";
  ASSERT_TRUE(written.contains("output_failures")) << written;
  EXPECT_EQ(written["output_failures"].size(), 1u);
  EXPECT_EQ(stored_exit_code(), 2);
  EXPECT_EQ(stored_report_exit_code(), 2);
  expect_summary(r, 2);
}

TEST_F(Outputs, ReportToAFullStdoutIsLoggedAndRecorded) {
  const std::string metrics = dir_ / "metrics.prom";
  const ProcessResult r = run_in_shell("--metrics-file '" + metrics + "' > /dev/full");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("cannot write the report to -: writing standard output: No space left "
                       "on device"),
            std::string::npos)
      << r.err;
  expect_summary(r, 2);
  EXPECT_EQ(metrics_exit_code(metrics), 2) << "written again once the stream failed";
  EXPECT_EQ(stored_exit_code(), 2);
}

TEST_F(Outputs, ReportToAClosedStdoutIsLoggedAndRecorded) {
  const ProcessResult r = run_in_shell(">&-");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("writing standard output: Bad file descriptor"), std::string::npos) << r.err;
  expect_summary(r, 2);
  EXPECT_EQ(stored_exit_code(), 2);
}

TEST_F(Outputs, DevNullStaysADeviceAndALinkStaysALink) {
  const std::string null = util::testing_device(dir_.string(), "null");
  ASSERT_TRUE(fs::is_character_file(null));
  const ProcessResult to_null = run({"--report", null, "--metrics-file", null});
  EXPECT_EQ(to_null.exit_code, 1) << to_null.err;
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(null))) << null << " was replaced";

  const fs::path target = dir_ / "target.json", link = dir_ / "last-run.json";
  { std::ofstream(target) << "old"; }
  fs::create_symlink(target, link);
  const ProcessResult through_link = run({"--report", link.string()});
  EXPECT_EQ(through_link.exit_code, 1) << through_link.err;
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_report(target)["exit_code"], 1);
}

}  // namespace
}  // namespace lsp_sweeper
