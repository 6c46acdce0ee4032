#include "server/http/session.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/error_field.h"
#include "base/strings.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "nlohmann/json.hpp"
#include "server/admission.h"
#include "server/auth.h"
#include "server/http/chat_completions.h"
#include "server/http/completion_builder.h"
#include "server/http/completions.h"
#include "server/http/dashboard.h"
#include "server/metrics.h"
#include "server/status_mapping.h"

namespace adak::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr size_t kHeaderLimit = size_t{64} * 1024;
// Bytes a client may send while its completion runs (pipelined requests) before it is treated as abusive.
constexpr size_t kMaxPipelinedBytes = 1 << 20;

std::string_view ToView(beast::string_view text) { return {text.data(), text.size()}; }

std::string JsonBody(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string StatusJson(const char* status) { return JsonBody(nlohmann::ordered_json{{"status", status}}); }

class Session;

// The scheduler's sink for one completion: every event is posted to the connection's strand, so the
// scheduler thread never waits on the network. The session may be gone by then (the event is dropped).
// The sink keeps the io_context alive: the scheduler may hold it after the gateway shut down.
class HttpSink final : public scheduler::RequestSink {
 public:
  HttpSink(std::shared_ptr<net::io_context> io, net::any_io_executor executor, std::weak_ptr<Session> session,
           size_t candidate)
      : io_(std::move(io)), executor_(std::move(executor)), session_(std::move(session)), candidate_(candidate) {}
  void OnTokens(std::vector<scheduler::TokenOutput> tokens) override;
  void OnPromptLogprobs(const std::vector<float>& logprobs,
                        const std::vector<std::vector<scheduler::TopLogprob>>& top) override;
  void OnFinish(scheduler::FinalOutput final) override;

 private:
  std::shared_ptr<net::io_context> io_;  // declared first: outlives executor_
  net::any_io_executor executor_;
  std::weak_ptr<Session> session_;
  size_t candidate_;  // which candidate of the session's request
};

// One client connection: reads requests (keep-alive, pipelining), answers them, and runs at most one
// completion at a time. Every member function runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::weak_ptr<net::io_context> io, std::shared_ptr<HttpGatewayShared> shared)
      : executor_(socket.get_executor()), stream_(std::move(socket)), io_(std::move(io)), shared_(std::move(shared)) {
    shared_->connections.fetch_add(1);
    if (shared_->tls != nullptr) tls_ = std::make_unique<net::ssl::stream<beast::tcp_stream&>>(stream_, *shared_->tls);
  }
  ~Session() {
    shared_->connections.fetch_sub(1);
    // The connection closed before the request finished (it was cancelled): forget its ids.
    absl::MutexLock lock(&shared_->mu);
    for (const Candidate& c : candidates_) {
      if (c.submitted && !c.finished) shared_->in_flight.erase(c.request_id);
    }
  }

  void Start() {
    net::dispatch(executor_, [self = shared_from_this()] {
      if (self->tls_ == nullptr) return self->ReadRequest();
      // The handshake counts against the header timeout.
      self->stream_.expires_after(self->HeaderTimeout());
      self->tls_->async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
        if (ec) return self->Close();
        self->ReadRequest();
      });
    });
  }

  void OnTokens(size_t c, const std::vector<scheduler::TokenOutput>& tokens);
  void OnPromptLogprobs(size_t c, std::vector<float> logprobs, std::vector<std::vector<scheduler::TopLogprob>> top);
  void OnFinish(size_t c, const scheduler::FinalOutput& final);

 private:
  ServiceContext& context() const { return *shared_->context; }
  // Runs `f` on the stream requests and responses go through: the TLS stream, or the TCP stream.
  template <typename F>
  void Io(F&& f) {
    if (tls_ != nullptr) {
      f(*tls_);
    } else {
      f(stream_);
    }
  }
  std::chrono::steady_clock::duration HeaderTimeout() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        absl::ToChronoNanoseconds(shared_->options.header_timeout));
  }
  std::chrono::steady_clock::duration IoTimeout() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        absl::ToChronoNanoseconds(shared_->options.io_timeout));
  }

  void ReadRequest();
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void ReadBody();
  void OnBody(beast::error_code ec);
  void OnReadError(beast::error_code ec);
  void Handle();
  void HandleCompletion(const std::string& body, CompletionCall::Endpoint endpoint);
  // Admits candidate `c` (its builder, its sink); false (with failure_ set) when it was refused.
  bool SubmitCandidate(size_t c);
  // The other candidates of the prompt of candidate `first` (once it has computed the prompt).
  void SubmitSiblings(size_t first);
  // The candidate's echo chunk, once, before its first tokens (streaming with echo).
  void SendEcho(size_t c);
  // The request fails with `status` (the first failure wins): the running candidates are cancelled and those
  // not yet submitted never will be.
  void Fail(const absl::Status& status);
  // Answers once every candidate is done (finished, or never to be submitted).
  void MaybeRespond();
  void CancelCandidates();
  void HandleMetrics();
  // GET /dashboard/data (server/http/dashboard.h).
  void HandleDashboardData();
  // The running/waiting/KV gauges from the scheduler, just before a scrape.
  void RefreshSchedulerGauges(Metrics& metrics);
  void HandleModels(std::string_view path);

  // The request's Origin when --allowed-origins admits it ("*" admits every origin), else "".
  std::string AllowedOrigin(const http::request<http::string_body>& request) const {
    auto origin = request.find(http::field::origin);
    if (origin == request.end()) return "";
    std::string value(ToView(origin->value()));
    for (const std::string& allowed : shared_->options.allowed_origins) {
      if (allowed == "*" || allowed == value) return value;
    }
    return "";
  }
  static bool IsJson(const http::request<http::string_body>& request) {
    auto type = request.find(http::field::content_type);
    if (type == request.end()) return false;
    std::string_view value = ToView(type->value());
    value = value.substr(0, value.find(';'));
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    return beast::iequals(beast::string_view(value.data(), value.size()), "application/json");
  }
  template <typename Message>
  void AddCorsHeaders(Message& message) const {
    if (cors_origin_.empty()) return;
    message.set(http::field::access_control_allow_origin, cors_origin_);
    message.set(http::field::vary, "Origin");
    message.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
    message.set(http::field::access_control_allow_headers, "Authorization, Content-Type");
    message.set(http::field::access_control_max_age, "600");
  }

  void Reply(http::status status, std::string body, std::string_view content_type = "application/json",
             std::string_view allow = "");
  // The error body of server/status_mapping.h (its `param` is the field the status carries), with the
  // mapped HTTP status, or with `code` for the transport-level refusals the mapping does not know (413, 431).
  void ReplyError(const absl::Status& status);
  void ReplyStatus(int code, const absl::Status& status);
  void AfterResponse();

  void Watch();
  void OnWatch(beast::error_code ec, size_t bytes);
  void PeerGone();
  void Close();

  void StartStream();
  void Enqueue(std::string data, bool raw = false);
  void WriteNext();
  void OnStreamWrite(beast::error_code ec);

  void EndCompletion();
  void Reject(const absl::Status& status);

  net::any_io_executor executor_;
  beast::tcp_stream stream_;
  std::unique_ptr<net::ssl::stream<beast::tcp_stream&>> tls_;  // over stream_, with --tls-cert
  std::weak_ptr<net::io_context> io_;
  std::shared_ptr<HttpGatewayShared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> response_;
  bool keep_alive_ = true;
  std::string cors_origin_;    // the current request's allowed Origin, "" for none
  bool answered_any_ = false;  // a response was written: the connection is a kept-alive one
  unsigned version_ = 11;
  bool closed_ = false;

  // The completion in progress, if any: its candidates (prompts x best_of), each a scheduler request.
  struct Candidate {
    uint64_t request_id = 0;
    bool submitted = false;  // handed to the scheduler
    bool finished = false;   // OnFinish received, or it will never be submitted
    bool echo_sent = false;
    std::optional<CompletionBuilder> builder;
    scheduler::FinalOutput final;
  };
  bool completion_active_ = false;  // submitted, response not fully written
  std::optional<CompletionCall> call_;
  std::vector<Candidate> candidates_;
  size_t unfinished_ = 0;     // candidates not yet done
  size_t last_finished_ = 0;  // the candidate whose OnFinish came last
  absl::Status failure_;      // the first candidate that failed or was refused
  std::string response_id_;
  int64_t created_ = 0;
  bool streaming_ = false;
  bool chunked_ = false;
  bool headers_sent_ = false;
  bool stream_done_ = false;

  // Reading while a completion runs, to notice a client that goes away.
  bool watching_ = false;
  bool resume_after_watch_ = false;

  // Streaming writes, one in flight.
  std::deque<std::string> pending_;
  bool writing_ = false;
};

void HttpSink::OnTokens(std::vector<scheduler::TokenOutput> tokens) {
  net::post(executor_, [session = session_, c = candidate_, tokens = std::move(tokens)]() {
    if (std::shared_ptr<Session> s = session.lock()) s->OnTokens(c, tokens);
  });
}

void HttpSink::OnPromptLogprobs(const std::vector<float>& logprobs,
                                const std::vector<std::vector<scheduler::TopLogprob>>& top) {
  net::post(executor_, [session = session_, c = candidate_, lp = logprobs, tp = top]() mutable {
    if (std::shared_ptr<Session> s = session.lock()) s->OnPromptLogprobs(c, std::move(lp), std::move(tp));
  });
}

void HttpSink::OnFinish(scheduler::FinalOutput final) {
  net::post(executor_, [session = session_, c = candidate_, final = std::move(final)]() {
    if (std::shared_ptr<Session> s = session.lock()) s->OnFinish(c, final);
  });
}

// A new connection has header_timeout to deliver its first request header. A kept-alive one may idle for
// idle_timeout, and from its next request's first byte on has header_timeout for the header.
void Session::ReadRequest() {
  if (closed_) return;
  if (!answered_any_ || buffer_.size() > 0) {
    ReadHeader();
    return;
  }
  stream_.expires_after(absl::ToChronoSeconds(shared_->options.idle_timeout));
  Io([&](auto& stream) {
    stream.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t bytes) {
      if (self->closed_) return;
      if (ec) {
        self->Close();  // idle timeout, end of stream, reset
        return;
      }
      self->buffer_.commit(bytes);
      self->ReadHeader();
    });
  });
}

void Session::ReadHeader() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(static_cast<uint64_t>(shared_->options.max_body_bytes));
  stream_.expires_after(HeaderTimeout());
  Io([&](auto& stream) {
    http::async_read_header(stream, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  });
}

void Session::OnReadError(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    keep_alive_ = false;  // the rest of the body is never read
    if (context().metrics != nullptr) context().metrics->RecordRejected(absl::StatusCode::kInvalidArgument);
    ReplyStatus(413, absl::InvalidArgumentError(StrCatStd("the request body exceeds the limit of ",
                                                          shared_->options.max_body_bytes, " bytes")));
    return;
  }
  if (ec == http::error::header_limit) {
    keep_alive_ = false;
    ReplyStatus(431, absl::InvalidArgumentError(StrCatStd("the request header exceeds ", kHeaderLimit, " bytes")));
    return;
  }
  if (ec.category() == http::make_error_code(http::error::bad_method).category() && ec != http::error::end_of_stream &&
      ec != http::error::partial_message) {
    keep_alive_ = false;
    ReplyError(absl::InvalidArgumentError(StrCatStd("malformed HTTP request: ", ec.message())));
    return;
  }
  Close();  // end of stream, timeout, reset
}

void Session::OnHeader(beast::error_code ec) {
  if (closed_) return;
  if (ec) {
    OnReadError(ec);
    return;
  }
  const auto& request = parser_->get();
  keep_alive_ = request.keep_alive();
  version_ = request.version();
  // The header is in: the body and the response get io_timeout.
  stream_.expires_after(IoTimeout());
  if (auto coding = request.find(http::field::transfer_encoding); coding != request.end()) {
    std::string_view value = ToView(coding->value());
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (!beast::iequals(beast::string_view(value.data(), value.size()), "chunked")) {
      keep_alive_ = false;  // the body cannot be delimited
      return ReplyError(absl::UnimplementedError(
          StrCatStd("Transfer-Encoding '", value, "' is not supported (only chunked, or Content-Length)")));
    }
  }
  auto expect = request.find(http::field::expect);
  if (expect != request.end() && beast::iequals(expect->value(), "100-continue") && !parser_->is_done()) {
    // curl sends Expect: 100-continue for bodies over 1 KiB and waits for this before sending them.
    auto interim = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    Io([&](auto& stream) {
      net::async_write(stream, net::buffer(*interim),
                       [self = shared_from_this(), interim](beast::error_code write_ec, size_t) {
                         if (write_ec) {
                           self->Close();
                           return;
                         }
                         self->ReadBody();
                       });
    });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  if (closed_) return;
  if (parser_->is_done()) {
    Handle();
    return;
  }
  Io([&](auto& stream) {
    http::async_read(stream, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  });
}

void Session::OnBody(beast::error_code ec) {
  if (closed_) return;
  if (ec) {
    OnReadError(ec);
    return;
  }
  Handle();
}

void Session::Handle() {
  const auto& request = parser_->get();
  keep_alive_ = request.keep_alive();
  std::string_view path = ToView(request.target());
  if (size_t query = path.find('?'); query != std::string_view::npos) path = path.substr(0, query);
  const http::verb method = request.method();
  const auto method_not_allowed = [&](std::string_view allowed) {
    Reply(http::status::method_not_allowed,
          OpenAiErrorBody(absl::InvalidArgumentError(StrCatStd("method ", ToView(request.method_string()),
                                                               " is not allowed on ", path, " (use ", allowed, ")"))),
          "application/json", allowed);
  };
  cors_origin_ = AllowedOrigin(request);
  if (method == http::verb::options) {
    // A CORS preflight: answered for allowed origins only (no key needed: browsers send none with it).
    if (cors_origin_.empty()) {
      return ReplyError(
          absl::PermissionDeniedError("cross-origin requests from this origin are not allowed "
                                      "(see the server's --allowed-origins)"));
    }
    return Reply(http::status::no_content, "", "text/plain");
  }
  // API keys guard the API (/v1/*), and /metrics and the dashboard when asked to; health and readiness
  // stay open.
  if (const ApiKeys* keys = context().api_keys;
      keys != nullptr && keys->enabled() &&
      (path.starts_with("/v1/") ||
       ((path == "/metrics" || path == "/dashboard" || path == "/dashboard/data") && keys->protect_metrics()))) {
    auto header = request.find(http::field::authorization);
    const std::string_view value = header == request.end() ? std::string_view() : ToView(header->value());
    if (absl::Status auth = keys->Check(value); !auth.ok()) {
      if (context().metrics != nullptr) context().metrics->RecordRejected(auth.code());
      return ReplyError(auth);
    }
  }
  try {
    if (path == "/v1/completions" || path == "/v1/chat/completions") {
      if (method != http::verb::post) return method_not_allowed("POST");
      if (!IsJson(request)) {
        auto type = request.find(http::field::content_type);
        return ReplyStatus(415, absl::InvalidArgumentError(StrCatStd(
                                    "Content-Type must be application/json, got '",
                                    type == request.end() ? std::string_view("(none)") : ToView(type->value()), "'")));
      }
      return HandleCompletion(request.body(), path == "/v1/completions" ? CompletionCall::Endpoint::kCompletions
                                                                        : CompletionCall::Endpoint::kChat);
    }
    const bool get = method == http::verb::get;
    if (path == "/healthz") {
      if (!get) return method_not_allowed("GET");
      return Reply(http::status::ok, StatusJson("ok"));
    }
    if (path == "/readyz") {
      if (!get) return method_not_allowed("GET");
      const ServingState* state = context().state;
      if (state == nullptr || state->ready()) return Reply(http::status::ok, StatusJson("ready"));
      const char* why = state->phase() == ServingPhase::kDraining   ? "draining"
                        : state->phase() == ServingPhase::kNotReady ? "not_ready"
                                                                    : "engine_failed";
      return Reply(http::status::service_unavailable, StatusJson(why));
    }
    if (path == "/metrics") {
      if (!get) return method_not_allowed("GET");
      return HandleMetrics();
    }
    if (path == "/dashboard") {
      if (!get) return method_not_allowed("GET");
      return Reply(http::status::ok, std::string(DashboardPage()), "text/html; charset=utf-8");
    }
    if (path == "/dashboard/data") {
      if (!get) return method_not_allowed("GET");
      return HandleDashboardData();
    }
    if (path == "/v1/models" || path.starts_with("/v1/models/")) {
      if (!get) return method_not_allowed("GET");
      return HandleModels(path);
    }
    ReplyError(absl::NotFoundError(StrCatStd("no route for ", ToView(request.method_string()), " ", path,
                                             " (endpoints: POST /v1/completions, POST /v1/chat/completions, "
                                             "GET /v1/models, /healthz, /readyz, /metrics, /dashboard)")));
  } catch (const std::exception& e) {
    // Nothing below should throw; a request must never take the gateway down.
    keep_alive_ = false;
    ReplyError(absl::InternalError(StrCatStd("internal error: ", e.what())));
  }
}

void Session::HandleMetrics() {
  Metrics* metrics = context().metrics;
  if (metrics == nullptr) {
    return ReplyError(absl::UnavailableError("metrics are not enabled on this server"));
  }
  RefreshSchedulerGauges(*metrics);
  Reply(http::status::ok, metrics->Serialize(), "text/plain; version=0.0.4; charset=utf-8");
}

void Session::HandleDashboardData() {
  Metrics* metrics = context().metrics;
  if (metrics == nullptr) {
    return ReplyError(absl::UnavailableError("metrics are not enabled on this server"));
  }
  RefreshSchedulerGauges(*metrics);
  Reply(http::status::ok, DashboardData(metrics->Snapshot(), context().model->config, context().model_name,
                                        absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())));
}

void Session::RefreshSchedulerGauges(Metrics& metrics) {
  if (context().scheduler != nullptr) {
    const scheduler::SchedulerStats stats = context().scheduler->stats();
    metrics.SetSchedulerGauges(stats.running, stats.waiting,
                               stats.kv_blocks_total > 0 ? static_cast<double>(stats.kv_blocks_used) /
                                                               static_cast<double>(stats.kv_blocks_total)
                                                         : 0.0);
  }
}

void Session::HandleModels(std::string_view path) {
  const ServiceContext& ctx = context();
  auto entry = [&](const std::string& id) {
    return nlohmann::ordered_json{{"id", id},
                                  {"object", "model"},
                                  {"created", shared_->created},
                                  {"owned_by", "adak"},
                                  {"root", ctx.model_name},  // never the server's path
                                  {"max_model_len", LimitsFor(ctx).max_context}};
  };
  // The model itself, then one entry per allocator profile ("<model>:<profile>", its parent the model, as
  // vLLM lists LoRA adapters), each with what `adak eval --record` measured for it.
  nlohmann::ordered_json models = nlohmann::ordered_json::array({entry(ctx.model_name)});
  const auto& profiles = ctx.routing_weights->allocators;
  for (size_t i = 0; i < profiles.size(); ++i) {
    nlohmann::ordered_json model = entry(StrCatStd(ctx.model_name, ":", profiles[i].name));
    model["parent"] = ctx.model_name;
    nlohmann::ordered_json adak = {{"routing", "adak"}, {"profile", profiles[i].name}, {"default_profile", i == 0}};
    const std::optional<double> mean_k = profiles[i].measured_mean_k();
    const std::optional<double> delta = profiles[i].measured_ppl_delta();
    adak["measured_mean_k"] = mean_k.has_value() ? nlohmann::ordered_json(*mean_k) : nlohmann::ordered_json();
    adak["measured_ppl_delta"] = delta.has_value() ? nlohmann::ordered_json(*delta) : nlohmann::ordered_json();
    if (auto on = profiles[i].metadata.find("measured_on"); on != profiles[i].metadata.end()) {
      adak["measured_on"] = on->second;
    }
    model["adak"] = std::move(adak);
    models.push_back(std::move(model));
  }
  if (path == "/v1/models" || path == "/v1/models/") {
    return Reply(http::status::ok, JsonBody(nlohmann::ordered_json{{"object", "list"}, {"data", std::move(models)}}));
  }
  const std::string_view name = path.substr(std::string_view("/v1/models/").size());
  for (nlohmann::ordered_json& model : models) {
    if (model["id"].get<std::string>() == name) return Reply(http::status::ok, JsonBody(model));
  }
  ReplyError(WithErrorField(
      absl::NotFoundError(StrCatStd("model '", name.substr(0, 128), "' is not served here (this server serves '",
                                    ctx.model_name, "'", profiles.empty() ? "" : " and its profiles", ")")),
      "model"));
}

// A completion refused before it reached the scheduler: counted (adak_request_errors_total{code}) and
// answered.
void Session::Reject(const absl::Status& status) { ReplyError(server::Reject(context(), status)); }

void Session::HandleCompletion(const std::string& body, CompletionCall::Endpoint endpoint) {
  ServiceContext& ctx = context();
  // Not serving wins over a malformed body; Admit checks again (the phase may change meanwhile).
  if (absl::Status serving = CheckServing(ctx); !serving.ok()) return Reject(serving);
  absl::StatusOr<CompletionCall> call =
      endpoint == CompletionCall::Endpoint::kChat ? ParseChatRequest(body, ctx) : ParseCompletionRequest(body, ctx);
  if (!call.ok()) return Reject(call.status());
  candidates_.clear();
  call_ = *std::move(call);
  candidates_.resize(static_cast<size_t>(call_->candidates()));
  unfinished_ = candidates_.size();
  failure_ = absl::OkStatus();
  response_id_ = StrCatStd(endpoint == CompletionCall::Endpoint::kChat ? "chatcmpl-" : "cmpl-", shared_->id_prefix,
                           absl::Hex(shared_->next_id.fetch_add(1), absl::kZeroPad8));
  created_ = absl::ToUnixSeconds(absl::Now());
  streaming_ = call_->stream;
  chunked_ = version_ >= 11;
  headers_sent_ = false;
  stream_done_ = false;
  // The first candidate of each prompt now; the others once it has computed the prompt (SubmitSiblings),
  // so they find its KV blocks in the prefix cache.
  const auto best_of = static_cast<size_t>(call_->best_of);
  for (size_t first = 0; first < candidates_.size(); first += best_of) {
    if (!SubmitCandidate(first)) {
      if (first == 0) {
        // Nothing runs: a plain refusal (Admit counted it).
        candidates_.clear();
        call_.reset();
        return ReplyError(failure_);
      }
      // Some prompts run already: they are cancelled and the refusal answers once they end.
      completion_active_ = true;
      {
        absl::MutexLock lock(&shared_->mu);
        ++shared_->active_responses;
      }
      Fail(failure_);
      stream_.expires_never();
      Watch();
      return;
    }
  }
  completion_active_ = true;
  bool stopping = false;
  {
    absl::MutexLock lock(&shared_->mu);
    ++shared_->active_responses;
    stopping = shared_->stopping;
  }
  if (stopping) CancelCandidates();
  stream_.expires_never();
  Watch();
}

bool Session::SubmitCandidate(size_t c) {
  ServiceContext& ctx = context();
  Candidate& candidate = candidates_[c];
  std::shared_ptr<net::io_context> io = io_.lock();
  if (io == nullptr) {
    failure_ = server::Reject(ctx, absl::UnavailableError("the server is shutting down"));
    return false;
  }
  const ApiRequest api = CandidateRequest(*call_, static_cast<int64_t>(c));
  auto sink = std::make_shared<HttpSink>(std::move(io), executor_, weak_from_this(), c);
  // The shared path (validation, Scheduler::Submit) counts its own refusals.
  absl::StatusOr<Admitted> admitted = Admit(ctx, api, std::move(sink));
  if (!admitted.ok()) {
    if (failure_.ok()) failure_ = admitted.status();
    return false;
  }
  // What echo returns: the prompt as sent, or the ids decoded (special tokens read as "", as vLLM does).
  std::string prompt_text = api.text.has_value() ? *api.text : ctx.model->tokenizer->Decode(admitted->prompt_ids, true);
  const auto best_of = static_cast<int64_t>(call_->best_of);
  const int64_t index = static_cast<int64_t>(c) / best_of * call_->n + static_cast<int64_t>(c) % best_of;
  candidate.builder.emplace(ctx, *call_, std::move(admitted->prompt_ids), std::move(prompt_text), response_id_,
                            created_, index);
  candidate.request_id = admitted->id;
  candidate.submitted = true;
  absl::MutexLock lock(&shared_->mu);
  shared_->in_flight.insert(candidate.request_id);
  return true;
}

void Session::SubmitSiblings(size_t first) {
  const auto best_of = static_cast<size_t>(call_->best_of);
  if (first % best_of != 0 || best_of == 1 || candidates_[first + 1].submitted || candidates_[first + 1].finished) {
    return;
  }
  for (size_t c = first + 1; c < first + best_of && failure_.ok(); ++c) {
    if (!SubmitCandidate(c)) Fail(failure_);  // refused (e.g. the queue is full): the request fails
  }
}

void Session::Fail(const absl::Status& status) {
  if (failure_.ok()) failure_ = status;
  CancelCandidates();
  // Candidates not submitted yet never will be.
  for (Candidate& c : candidates_) {
    if (!c.submitted && !c.finished) {
      c.finished = true;
      --unfinished_;
    }
  }
}

void Session::SendEcho(size_t c) {
  Candidate& candidate = candidates_[c];
  if (!streaming_ || !call_->echo || candidate.echo_sent) return;
  candidate.echo_sent = true;
  if (!headers_sent_) StartStream();
  Enqueue(candidate.builder->EchoChunk());
}

void Session::OnPromptLogprobs(size_t c, std::vector<float> logprobs,
                               std::vector<std::vector<scheduler::TopLogprob>> top) {
  if (closed_ || c >= candidates_.size() || candidates_[c].finished || !candidates_[c].builder) return;
  candidates_[c].builder->SetPromptLogprobs(std::move(logprobs), std::move(top));
  SendEcho(c);
  SubmitSiblings(c);
}

void Session::OnTokens(size_t c, const std::vector<scheduler::TokenOutput>& tokens) {
  if (closed_ || c >= candidates_.size() || candidates_[c].finished || !candidates_[c].builder) return;
  Candidate& candidate = candidates_[c];
  candidate.builder->AddTokens(tokens);
  SubmitSiblings(c);
  if (!streaming_) return;
  SendEcho(c);
  if (!headers_sent_) StartStream();
  Enqueue(candidate.builder->StreamChunk());
}

void Session::OnFinish(size_t c, const scheduler::FinalOutput& final) {
  if (c >= candidates_.size() || candidates_[c].finished) return;
  Candidate& candidate = candidates_[c];
  candidate.finished = true;
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->in_flight.erase(candidate.request_id);
  }
  if (closed_) return;
  --unfinished_;
  candidate.final = final;
  if (!final.status.ok()) {
    Fail(final.status);
  } else {
    SubmitSiblings(c);
  }
  if (streaming_ && final.status.ok() && failure_.ok()) {
    SendEcho(c);
    if (!headers_sent_) StartStream();
    Enqueue(candidate.builder->StreamChunk());  // text released only at the end
    if (unfinished_ > 0) Enqueue(candidate.builder->FinalChunk(final, nullptr));
  }
  last_finished_ = c;
  MaybeRespond();
}

void Session::MaybeRespond() {
  if (unfinished_ > 0 || closed_) return;
  std::vector<const CompletionBuilder*> builders;
  std::vector<const scheduler::FinalOutput*> finals;
  if (failure_.ok()) {
    for (const Candidate& c : candidates_) {
      builders.push_back(&*c.builder);
      finals.push_back(&c.final);
    }
  }
  if (!streaming_) {
    if (!failure_.ok()) return ReplyError(failure_);
    if (builders.size() == 1) return Reply(http::status::ok, builders[0]->Response(*finals[0]));
    return Reply(http::status::ok, CombineResponse(*call_, builders, finals));
  }
  if (!headers_sent_) {
    if (!failure_.ok()) return ReplyError(failure_);  // nothing streamed yet: a plain error
    StartStream();
  }
  if (failure_.ok()) {
    // The last candidate to finish: its final chunk carries the usage of all.
    const nlohmann::ordered_json usage = builders[0]->UsageObject(finals);
    const Candidate& last = candidates_[last_finished_];
    Enqueue(last.builder->FinalChunk(last.final, &usage));
    Enqueue("data: [DONE]\n\n");
  } else {
    Enqueue(StrCatStd("data: ", OpenAiErrorBody(failure_), "\n\ndata: [DONE]\n\n"));
  }
  if (chunked_) Enqueue("0\r\n\r\n", /*raw=*/true);
  stream_done_ = true;
  if (!writing_ && pending_.empty()) AfterResponse();
}

void Session::CancelCandidates() {
  if (context().scheduler == nullptr) return;
  for (const Candidate& c : candidates_) {
    if (c.submitted && !c.finished) context().scheduler->Cancel(c.request_id);
  }
}

void Session::StartStream() {
  headers_sent_ = true;
  if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the end of the stream is the end of the connection
  Enqueue(
      StrCatStd("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nServer: adak\r\n",
                cors_origin_.empty() ? std::string()
                                     : StrCatStd("Access-Control-Allow-Origin: ", cors_origin_, "\r\nVary: Origin\r\n"),
                chunked_ ? "Transfer-Encoding: chunked\r\n" : "",
                keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n", "\r\n"),
      /*raw=*/true);
}

void Session::Enqueue(std::string data, bool raw) {
  if (data.empty() || closed_) return;
  if (chunked_ && !raw) data = absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n");
  pending_.push_back(std::move(data));
  if (!writing_) WriteNext();
}

void Session::WriteNext() {
  writing_ = true;
  Io([&](auto& stream) {
    net::async_write(stream, net::buffer(pending_.front()),
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnStreamWrite(ec); });
  });
}

void Session::OnStreamWrite(beast::error_code ec) {
  writing_ = false;
  if (!pending_.empty()) pending_.pop_front();
  if (closed_) return;
  if (ec) {
    PeerGone();
    return;
  }
  if (!pending_.empty()) {
    WriteNext();
  } else if (stream_done_) {
    AfterResponse();
  }
}

void Session::Watch() {
  watching_ = true;
  Io([&](auto& stream) {
    stream.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t bytes) {
      self->OnWatch(ec, bytes);
    });
  });
}

void Session::OnWatch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  if (closed_) return;
  if (!ec) {
    buffer_.commit(bytes);  // a pipelined request: parsed once this completion is answered
    if (completion_active_) {
      if (buffer_.size() > kMaxPipelinedBytes) {
        PeerGone();
        return;
      }
      Watch();
    } else if (resume_after_watch_) {
      resume_after_watch_ = false;
      ReadRequest();
    }
    return;
  }
  if (ec == net::error::operation_aborted) {
    if (resume_after_watch_) {
      resume_after_watch_ = false;
      ReadRequest();
    }
    return;
  }
  PeerGone();  // end of stream or reset: the client went away
}

void Session::PeerGone() {
  CancelCandidates();
  Close();
}

void Session::EndCompletion() {
  if (!completion_active_) return;
  completion_active_ = false;
  absl::MutexLock lock(&shared_->mu);
  --shared_->active_responses;
}

void Session::Close() {
  if (closed_) return;
  closed_ = true;
  EndCompletion();
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

void Session::Reply(http::status status, std::string body, std::string_view content_type, std::string_view allow) {
  if (closed_) return;
  auto response = std::make_shared<http::response<http::string_body>>(status, version_ >= 11 ? 11 : 10);
  response->set(http::field::server, "adak");
  response->set(http::field::content_type, std::string(content_type));
  if (!allow.empty()) response->set(http::field::allow, std::string(allow));
  if (status == http::status::unauthorized) response->set(http::field::www_authenticate, "Bearer");
  AddCorsHeaders(*response);
  if (status == http::status::too_many_requests || status == http::status::service_unavailable) {
    response->set(http::field::retry_after, "1");  // seconds; OpenAI clients honour it
  }
  response->keep_alive(keep_alive_);
  response->body() = std::move(body);
  response->prepare_payload();
  response_ = response;
  stream_.expires_after(IoTimeout());
  Io([&](auto& stream) {
    http::async_write(stream, *response, [self = shared_from_this(), response](beast::error_code ec, size_t) {
      self->response_.reset();
      if (ec) {
        self->PeerGone();
        return;
      }
      self->AfterResponse();
    });
  });
}

void Session::ReplyStatus(int code, const absl::Status& status) {
  Reply(static_cast<http::status>(code), OpenAiErrorBody(status));
}

void Session::ReplyError(const absl::Status& status) { ReplyStatus(HttpStatusCode(status), status); }

void Session::AfterResponse() {
  answered_any_ = true;
  EndCompletion();
  if (closed_) return;
  if (!keep_alive_) {
    Close();
    return;
  }
  if (watching_) {
    // The watch read ends with operation_aborted (or with data) and then reads the next request.
    resume_after_watch_ = true;
    beast::error_code ec;
    stream_.socket().cancel(ec);
    return;
  }
  ReadRequest();
}

}  // namespace

void StartHttpSession(tcp::socket socket, std::weak_ptr<net::io_context> io,
                      std::shared_ptr<HttpGatewayShared> shared) {
  std::make_shared<Session>(std::move(socket), std::move(io), std::move(shared))->Start();
}

}  // namespace adak::server
