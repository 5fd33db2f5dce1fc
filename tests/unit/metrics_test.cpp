#include "lsp_sweeper/report/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lsp_sweeper::report {
namespace {

using namespace std::chrono_literals;

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

RunResult sample_run() {
  RunResult r;
  r.complete = true;
  r.started_at = std::chrono::system_clock::time_point(1700000000000ms);
  r.finished_at = r.started_at + 2500ms;
  r.node.payments_scanned = 14;
  r.node.payments_rejected = 2;
  plan::Repair applied;
  applied.kind = plan::RepairKind::MissedPaymentSent;
  applied.flow = Flow::Relay;
  applied.applied = true;
  plan::Repair raced = applied;
  raced.applied = false;
  r.repairs = {applied, raced};
  plan::Divergence forged;
  forged.kind = plan::DivergenceKind::PreimageMismatch;
  plan::Divergence waiting;
  waiting.kind = plan::DivergenceKind::OutboundSucceededEarly;
  waiting.needs_person = false;
  r.divergences = {forged, waiting};
  return r;
}

TEST(Metrics, AreAViewOfTheRun) {
  const std::string text = to_prometheus(sample_run(), std::nullopt);
  EXPECT_TRUE(has_line(text, "lsp_sweeper_last_run_timestamp_seconds 1700000002.500")) << text;
  EXPECT_TRUE(has_line(text, "lsp_sweeper_last_success_timestamp_seconds 1700000002.500"));
  EXPECT_TRUE(has_line(text, "lsp_sweeper_run_duration_seconds 2.500"));
  EXPECT_TRUE(has_line(text, "lsp_sweeper_run_exit_code 1"));
  EXPECT_TRUE(has_line(text, "lsp_sweeper_payments_scanned 14"));
  EXPECT_TRUE(has_line(text, "lsp_sweeper_payments_rejected 2"));
  EXPECT_TRUE(
      has_line(text, R"(lsp_sweeper_repairs_planned{kind="missed_payment_sent",flow="relay"} 2)"));
  EXPECT_TRUE(
      has_line(text, R"(lsp_sweeper_repairs_applied{kind="missed_payment_sent",flow="relay"} 1)"));
  EXPECT_TRUE(
      has_line(text, R"(lsp_sweeper_repairs_applied{kind="missed_claimable",flow="apay"} 0)"));
  EXPECT_TRUE(has_line(text, R"(lsp_sweeper_divergences{kind="outbound_succeeded_early"} 1)"));
  EXPECT_TRUE(has_line(
      text, R"(lsp_sweeper_divergences_needing_person{kind="outbound_succeeded_early"} 0)"));
  EXPECT_TRUE(
      has_line(text, R"(lsp_sweeper_divergences_needing_person{kind="preimage_mismatch"} 1)"));
  EXPECT_TRUE(has_line(text, "lsp_sweeper_alert_failures 0"));
  EXPECT_TRUE(has_line(text, "# TYPE lsp_sweeper_repairs_applied gauge"));
}

TEST(Metrics, AFailedRunKeepsThePreviousSuccess) {
  RunResult failed = sample_run();
  failed.complete = false;
  failed.error = "node: 401";
  const std::string text = to_prometheus(failed, 1600000000.25);
  EXPECT_TRUE(has_line(text, "lsp_sweeper_last_success_timestamp_seconds 1600000000.250")) << text;
  EXPECT_TRUE(has_line(text, "lsp_sweeper_run_exit_code 2"));
  EXPECT_EQ(last_success_timestamp(text), 1600000000.25);

  // No success ever: the series is absent rather than a made-up 0.
  EXPECT_EQ(to_prometheus(failed, std::nullopt).find("lsp_sweeper_last_success_timestamp_seconds "),
            std::string::npos);
}

TEST(Metrics, ADryRunIsNotASuccess) {
  RunResult dry = sample_run();
  dry.dry_run = true;
  EXPECT_FALSE(is_success(dry));
  EXPECT_EQ(last_success_timestamp(to_prometheus(dry, 5.0)), 5.0);
  EXPECT_EQ(last_success_timestamp(to_prometheus(sample_run(), 5.0)), 1700000002.5);
}

TEST(Metrics, LastSuccessIsReadOnlyFromItsOwnLine) {
  EXPECT_EQ(last_success_timestamp(""), std::nullopt);
  EXPECT_EQ(last_success_timestamp("lsp_sweeper_last_success_timestamp_seconds_x 9\n"),
            std::nullopt);
  EXPECT_EQ(last_success_timestamp("# HELP lsp_sweeper_last_success_timestamp_seconds x\n"),
            std::nullopt);
  EXPECT_EQ(last_success_timestamp("lsp_sweeper_last_success_timestamp_seconds garbage\n"),
            std::nullopt);
}

// An output that could not be written makes the run exit 2 in every view of it, though the
// sweep itself completed (and counts as the last success).
TEST(Metrics, AFailedOutputIsExitTwoInEveryView) {
  RunResult r = sample_run();
  ASSERT_EQ(exit_code(r), 1);
  r.output_failures = {"cannot write the report to /x: /x is a directory"};
  EXPECT_EQ(exit_code(r), 2);
  const auto report = to_json(r);
  EXPECT_EQ(report["exit_code"], 2);
  EXPECT_EQ(report["complete"], true);
  EXPECT_EQ(report["output_failures"][0], "cannot write the report to /x: /x is a directory");
  const std::string line = summary_line(r);
  EXPECT_NE(line.find(" output_failures=1 exit=2"), std::string::npos) << line;
  const std::string text = to_prometheus(r, std::nullopt);
  EXPECT_TRUE(has_line(text, "lsp_sweeper_run_exit_code 2")) << text;
  EXPECT_TRUE(has_line(text, "lsp_sweeper_last_success_timestamp_seconds 1700000002.500")) << text;
}

}  // namespace
}  // namespace lsp_sweeper::report
