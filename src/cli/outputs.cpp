#include "outputs.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <optional>
#include <vector>

#include "lsp_sweeper/report/metrics.hpp"
#include "lsp_sweeper/util/file.hpp"

namespace lsp_sweeper::cli {

void guard_standard_streams() {
  for (const int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
    // Opened read-only, /dev/null takes the lowest free number: the closed one.
    if (::fcntl(fd, F_GETFD) == -1) (void)::open("/dev/null", O_RDONLY);
  }
  std::signal(SIGPIPE, SIG_IGN);
}

namespace {

struct Output {
  std::string what;
  std::string path;
  bool metrics = false;
  std::unique_ptr<util::OutputFile> file;  // none once it failed
  std::optional<double> last_success;      // metrics: the previous file's
};

std::string render(const Output& output, const report::RunResult& result) {
  return output.metrics ? report::to_prometheus(result, output.last_success)
                        : report::to_json(result).dump(2) + '\n';
}

void fail(Output& output, const std::string& reason, report::RunResult& result) {
  std::string message = "cannot write the " + output.what + " to " + output.path + ": " + reason;
  spdlog::error("{}", message);
  result.output_failures.push_back(std::move(message));
  output.file.reset();
}

}  // namespace

void write_outputs(const std::string& report_path, const std::string& metrics_path,
                   report::RunResult& result) {
  std::vector<Output> outputs;
  if (!report_path.empty()) outputs.push_back({"report", report_path, false, {}, {}});
  if (!metrics_path.empty()) outputs.push_back({"metrics file", metrics_path, true, {}, {}});

  for (Output& output : outputs) {
    try {
      output.file = std::make_unique<util::OutputFile>(output.path);
    } catch (const util::FileError& e) {
      fail(output, e.what(), result);
      continue;
    }
    // The previous file's last success is carried over when this run is not one: the file
    // alone keeps it, so it survives a database that is down (the very case it must report).
    // Only a file being replaced is read: a FIFO or a device holds no previous run.
    if (output.metrics && output.file->rewritable()) {
      const auto previous = util::read_file(output.path);
      if (previous) output.last_success = report::last_success_timestamp(*previous);
    }
  }

  const auto write = [&](bool streams) {
    for (Output& output : outputs) {
      if (!output.file || output.file->rewritable() == streams) continue;
      try {
        output.file->write(render(output, result));
      } catch (const util::FileError& e) {
        fail(output, e.what(), result);
      }
    }
  };
  // A failure can only turn the exit code into 2, once: one more pass over the files then
  // makes every output agree.
  const int code = report::exit_code(result);
  write(false);
  write(true);
  if (report::exit_code(result) != code) write(false);
  // Renaming into place fails only if the target changed since it was checked; a file
  // already in place then keeps the earlier exit code.
  for (Output& output : outputs) {
    if (!output.file) continue;
    try {
      output.file->commit();
    } catch (const util::FileError& e) {
      fail(output, e.what(), result);
    }
  }
}

}  // namespace lsp_sweeper::cli
