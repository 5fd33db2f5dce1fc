// TLS to the node: certificates and host names are verified by default, and a private CA is
// trusted only when given with --ca-file. The simulator serves https:// with a certificate
// signed by a CA made for the test (openssl).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "integration/sweep_fixture.hpp"

namespace lsp_sweeper {
namespace {

using nlohmann::json;
using namespace testing;

namespace fs = std::filesystem;

class Tls : public SweepFixture {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lsp-sweeper-tls-" + db_.name());
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    // A CA, and a server certificate it signs for 127.0.0.1 only.
    const std::string script =
        "cd '" + d +
        "' && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=lsp-sweeper-test-ca && "
        "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=127.0.0.1 && "
        "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile san.ext -out node.pem";
    ASSERT_EQ(std::system(("(" + script + ") >/dev/null 2>&1").c_str()), 0);

    good_ = secret('t');
    seed_apay(good_.hash, "outbound_paid", 2000000);
    serve(json::array({outbound_succeeded(good_.hash, good_.preimage)}), "paginated",
          sim::TlsFiles{d + "/node.pem", d + "/node.key"});
  }
  void TearDown() override { fs::remove_all(dir_); }

  ProcessResult sweep_at(const std::string& url, const std::vector<std::string>& args = {}) {
    return run_sweeper(url, db_.uri(), args);
  }

  fs::path dir_;
  Secret good_;
};

TEST_F(Tls, UnknownCaIsRefusedAndNothingIsApplied) {
  ASSERT_EQ(node_->url().rfind("https://", 0), 0u);
  const ProcessResult r = sweep_at(node_->url());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;
  EXPECT_EQ(apay_status(good_.hash), "outbound_paid");
}

TEST_F(Tls, PrivateCaGivenWithCaFileIsTrusted) {
  const ProcessResult r = sweep_at(node_->url(), {"--ca-file", (dir_ / "ca.pem").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(apay_status(good_.hash), "outbound_claimed");
}

TEST_F(Tls, CertificateForAnotherHostIsRefused) {
  // Same server, reached by a name the certificate does not carry.
  std::string url = node_->url();
  url.replace(url.find("127.0.0.1"), 9, "localhost");
  const ProcessResult r = sweep_at(url, {"--ca-file", (dir_ / "ca.pem").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("certificate"), std::string::npos) << r.err;
  EXPECT_EQ(apay_status(good_.hash), "outbound_paid");
}

}  // namespace
}  // namespace lsp_sweeper
