// TLS and mutual TLS on both ports of a real `adak serve` over loopback (gRPC through grpc::SslCredentials,
// HTTPS through curl), with a throwaway CA, server and client certificates made in the test by the openssl
// command line tool.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/grpc_client.h"
#include "tests/server_process.h"
#include "tests/test_util.h"

namespace adak::testing {
namespace {

using ::testing::HasSubstr;

// ca.pem/ca.key, server.pem/server.key (SAN localhost, 127.0.0.1) and client.pem/client.key, both signed by
// the CA, plus other-ca.pem and stranger.pem/stranger.key signed by another CA.
class Pki {
 public:
  Pki() {
    const std::string d = ShellQuote(dir_.path().string());
    const std::string script = absl::StrCat(
        "set -e; cd ", d, "\n",
        "for ca in ca other-ca; do openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca "
        "-keyout $ca.key -out $ca.pem 2>/dev/null; done\n",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext\n",
        "sign() { openssl req -newkey rsa:2048 -nodes -subj /CN=$1 -keyout $1.key -out $1.csr 2>/dev/null; "
        "openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days 2 -out $1.pem $3 "
        "2>/dev/null; }\n",
        "sign server ca '-extfile san.ext'\nsign client ca ''\nsign stranger other-ca ''\n");
    WriteFile(dir_.path() / "make.sh", script);
    int code = -1;
    const std::string out = RunCommand("bash " + ShellQuote((dir_.path() / "make.sh").string()) + " 2>&1", &code);
    ok_ = code == 0;
    EXPECT_TRUE(ok_) << out;
  }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string Path(const std::string& name) const { return (dir_.path() / name).string(); }
  [[nodiscard]] std::string Pem(const std::string& name) const { return ReadFile(dir_.path() / name); }

 private:
  TempDir dir_;
  bool ok_ = false;
};

// GetModelInfo over a channel with `credentials`, naming the server "localhost" for the certificate check.
grpc::Status Info(int port, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), credentials, args);
  auto stub = adak::v1::Generation::NewStub(channel);
  grpc::ClientContext call;
  call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  adak::v1::GetModelInfoRequest request;
  adak::v1::ModelInfo info;
  return stub->GetModelInfo(&call, request, &info);
}

std::vector<std::string> Args(const Pki& pki) {
  return {"--model",    DefaultModelDir().string(), "--threads", "1",
          "--tls-cert", pki.Path("server.pem"),     "--tls-key", pki.Path("server.key")};
}

// curl `path` on the HTTPS port as https://localhost:port (resolved to 127.0.0.1) with `options`; the HTTP
// status, or "000" when no response came (curl's own failure).
std::string Curl(int port, const std::string& path, const std::string& options, std::string* body = nullptr) {
  int code = -1;
  const std::string out = RunCommand(absl::StrCat("curl -s -m 20 -o - -w '\n%{http_code}' --resolve localhost:", port,
                                                  ":127.0.0.1 ", options, " https://localhost:", port, path),
                                     &code);
  const size_t newline = out.rfind('\n');
  if (body != nullptr) *body = newline == std::string::npos ? "" : out.substr(0, newline);
  return newline == std::string::npos ? out : out.substr(newline + 1);
}

TEST(TlsTest, ServesTlsOnlyToClientsThatTrustTheCertificate) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(Args(pki));
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->grpc_port();
  grpc::SslCredentialsOptions trusted;
  trusted.pem_root_certs = pki.Pem("ca.pem");
  const grpc::Status ok = Info(port, grpc::SslCredentials(trusted));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::SslCredentialsOptions wrong_ca;
  wrong_ca.pem_root_certs = pki.Pem("other-ca.pem");
  EXPECT_EQ(Info(port, grpc::SslCredentials(wrong_ca)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Info(port, grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);

  // HTTPS: a streamed completion, keep-alive, and nothing for clients that do not trust the certificate.
  const int http = (*server)->http_port();
  const std::string ca = "--cacert " + ShellQuote(pki.Path("ca.pem"));
  std::string body;
  EXPECT_EQ(
      Curl(http, "/v1/completions",
           ca + " -H 'Content-Type: application/json' -d '{\"prompt\": \"Once\", \"max_tokens\": 4, \"stream\": true}'",
           &body),
      "200");
  EXPECT_THAT(body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(Curl(http, "/healthz", ca), "200");
  EXPECT_EQ(Curl(http, "/healthz", "--cacert " + ShellQuote(pki.Path("other-ca.pem"))), "000");
  int code = -1;
  const std::string plain = RunCommand(
      absl::StrCat("curl -s -m 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:", http, "/healthz"), &code);
  EXPECT_NE(plain, "200");
}

TEST(TlsTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  std::vector<std::string> args = Args(pki);
  args.insert(args.end(), {"--tls-client-ca", pki.Path("ca.pem")});
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(args);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->grpc_port();
  grpc::SslCredentialsOptions client;
  client.pem_root_certs = pki.Pem("ca.pem");
  client.pem_cert_chain = pki.Pem("client.pem");
  client.pem_private_key = pki.Pem("client.key");
  const grpc::Status ok = Info(port, grpc::SslCredentials(client));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  grpc::SslCredentialsOptions anonymous;
  anonymous.pem_root_certs = pki.Pem("ca.pem");
  EXPECT_FALSE(Info(port, grpc::SslCredentials(anonymous)).ok());
  grpc::SslCredentialsOptions stranger = client;
  stranger.pem_cert_chain = pki.Pem("stranger.pem");
  stranger.pem_private_key = pki.Pem("stranger.key");
  EXPECT_FALSE(Info(port, grpc::SslCredentials(stranger)).ok());

  const int http = (*server)->http_port();
  const std::string ca = "--cacert " + ShellQuote(pki.Path("ca.pem"));
  EXPECT_EQ(Curl(http, "/healthz",
                 ca + " --cert " + ShellQuote(pki.Path("client.pem")) + " --key " + ShellQuote(pki.Path("client.key"))),
            "200");
  EXPECT_EQ(Curl(http, "/healthz", ca), "000");
  EXPECT_EQ(
      Curl(http, "/healthz",
           ca + " --cert " + ShellQuote(pki.Path("stranger.pem")) + " --key " + ShellQuote(pki.Path("stranger.key"))),
      "000");
}

TEST(TlsTest, RefusesIncompleteOrUnreadableTlsOptions) {
  Pki pki;
  ASSERT_TRUE(pki.ok());
  absl::StatusOr<std::unique_ptr<ServerProcess>> half = ServerProcess::Start(
      {"--model", DefaultModelDir().string(), "--http-port", "-1", "--tls-cert", pki.Path("server.pem")});
  ASSERT_FALSE(half.ok());
  EXPECT_THAT(half.status().message(), HasSubstr("--tls-cert and --tls-key go together"));
  absl::StatusOr<std::unique_ptr<ServerProcess>> http_only =
      ServerProcess::Start({"--model", DefaultModelDir().string(), "--grpc-port", "-1", "--tls-cert",
                            pki.Path("nope.pem"), "--tls-key", pki.Path("server.key")});
  ASSERT_FALSE(http_only.ok());
  EXPECT_THAT(http_only.status().message(), HasSubstr("--tls-cert: cannot read"));
  absl::StatusOr<std::unique_ptr<ServerProcess>> missing =
      ServerProcess::Start({"--model", DefaultModelDir().string(), "--http-port", "-1", "--tls-cert",
                            pki.Path("nope.pem"), "--tls-key", pki.Path("server.key")});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("--tls-cert: cannot read"));
}

}  // namespace
}  // namespace adak::testing
