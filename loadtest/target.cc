#include "loadtest/target.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>

#include "adak/v1/generation.grpc.pb.h"
#include "base/strings.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"

namespace adak::loadtest {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0, Clock::time_point t) { return std::chrono::duration<double>(t - t0).count(); }

// Records the arrival of `n` tokens at `now` (see report.h for the ITL convention).
void OnTokens(int64_t n, Clock::time_point sent, Clock::time_point now, Clock::time_point* last,
              RequestRecord* record) {
  if (n <= 0) return;
  if (record->ttft_s < 0) {
    record->ttft_s = Since(sent, now);
    for (int64_t j = 1; j < n; ++j) record->itl_s.push_back(0.0);
  } else {
    const double gap = Since(*last, now) / static_cast<double>(n);
    for (int64_t j = 0; j < n; ++j) record->itl_s.push_back(gap);
  }
  *last = now;
  record->output_tokens += n;
}

class GrpcTarget : public Target {
 public:
  GrpcTarget(const TargetOptions& options, std::shared_ptr<grpc::Channel> channel)
      : options_(options), stub_(adak::v1::Generation::NewStub(std::move(channel))) {}

  void Send(const RequestSpec& spec, const Arm& arm, Clock::time_point run_start, RequestRecord* record) override {
    adak::v1::GenerateRequest request;
    request.set_text(spec.prompt);
    request.set_max_tokens(static_cast<int32_t>(spec.max_tokens));
    request.set_ignore_eos(true);
    request.mutable_sampling()->set_temperature(static_cast<float>(options_.temperature));
    request.mutable_sampling()->set_seed(spec.seed);
    if (!arm.policy.empty()) {
      adak::v1::RoutingOptions* routing = request.mutable_routing();
      routing->set_policy(arm.policy);
      if (arm.value) {
        if (arm.policy == "topk") routing->set_top_k(static_cast<int32_t>(*arm.value));
        if (arm.policy == "topp") routing->set_top_p(static_cast<float>(*arm.value));
        if (arm.policy == "threshold") routing->set_threshold(static_cast<float>(*arm.value));
      }
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    const Clock::time_point sent = Clock::now();
    record->sent_s = Since(run_start, sent);
    Clock::time_point last = sent;
    auto reader = stub_->GenerateStream(&context, request);
    adak::v1::GenerateStreamResponse message;
    while (reader->Read(&message)) {
      OnTokens(message.token_ids_size(), sent, Clock::now(), &last, record);
      if (message.has_usage()) {
        const adak::v1::Usage& usage = message.usage();
        record->prompt_tokens = usage.prompt_tokens();
        record->mean_k = usage.mean_k();
        record->expert_flops = usage.expert_flops();
        record->expert_flops_saved = usage.expert_flops_saved();
      }
    }
    const grpc::Status status = reader->Finish();
    record->e2e_s = Since(sent, Clock::now());
    record->ok = status.ok();
    if (!status.ok()) {
      static constexpr std::array<std::string_view, 17> kNames = {
          "ok",        "cancelled",      "unknown",           "invalid_argument", "deadline_exceeded",
          "not_found", "exists",         "permission_denied", "exhausted",        "failed_precondition",
          "aborted",   "out_of_range",   "unimplemented",     "internal",         "unavailable",
          "data_loss", "unauthenticated"};
      const auto code = static_cast<size_t>(status.error_code());
      record->error_code = code < kNames.size() ? std::string(kNames[code]) : "grpc_" + std::to_string(code);
      record->error_message = status.error_message();
    }
  }

 private:
  TargetOptions options_;
  std::unique_ptr<adak::v1::Generation::Stub> stub_;
};

class OpenAiTarget : public Target {
 public:
  OpenAiTarget(const TargetOptions& options, std::string host, std::string port, std::string path)
      : options_(options), host_(std::move(host)), port_(std::move(port)), path_(std::move(path)) {}

  void Send(const RequestSpec& spec, const Arm& arm, Clock::time_point run_start, RequestRecord* record) override {
    nlohmann::json body = {{"prompt", spec.prompt},
                           {"max_tokens", spec.max_tokens},
                           {"temperature", options_.temperature},
                           {"seed", spec.seed & 0x7fffffffu},
                           {"ignore_eos", true},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    if (!options_.model.empty()) body["model"] = options_.model;
    if (!arm.policy.empty()) {
      nlohmann::json routing = {{"policy", arm.policy}};
      if (arm.value) {
        if (arm.policy == "topk") routing["top_k"] = static_cast<int64_t>(*arm.value);
        if (arm.policy == "topp") routing["top_p"] = *arm.value;
        if (arm.policy == "threshold") routing["threshold"] = *arm.value;
      }
      body["adak"] = {{"routing", routing}};
    }
    const Clock::time_point sent = Clock::now();
    record->sent_s = Since(run_start, sent);
    const absl::Status status = Stream(body.dump(), sent, record);
    record->e2e_s = Since(sent, Clock::now());
    record->ok = status.ok() && record->error_code.empty();
    if (!status.ok() && record->error_code.empty()) {
      record->error_code = absl::IsDeadlineExceeded(status) ? "timeout" : "transport";
      record->error_message = std::string(status.message());
    }
  }

 private:
  // Sends the request and reads its event stream, handling each `data:` event as it arrives.
  absl::Status Stream(const std::string& body, Clock::time_point sent, RequestRecord* record) {
    net::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(absl::ToChronoNanoseconds(options_.timeout));
    beast::error_code ec;
    net::ip::tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(host_, port_, ec);
    if (ec) return absl::UnavailableError(StrCatStd("resolve ", host_, ": ", ec.message()));
    stream.connect(endpoints, ec);
    if (ec) return absl::UnavailableError(StrCatStd("connect ", host_, ":", port_, ": ", ec.message()));
    http::request<http::string_body> request{http::verb::post, path_, 11};
    request.set(http::field::host, host_);
    request.set(http::field::content_type, "application/json");
    request.set(http::field::accept, "text/event-stream");
    request.set(http::field::connection, "close");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request, ec);
    if (ec) return absl::UnavailableError(StrCatStd("write: ", ec.message()));

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    // No limit (a number: Boost 1.74 compares a Content-Length with an empty optional limit as exceeded).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(stream, buffer, parser, ec);
    if (ec) return FromBeast(ec, "read header");
    const int status = static_cast<int>(parser.get().result_int());
    std::string pending;  // bytes of the event stream not yet split into events
    Clock::time_point last = sent;
    std::array<char, 16384> chunk{};
    while (!parser.is_done()) {
      parser.get().body().data = chunk.data();
      parser.get().body().size = chunk.size();
      http::read_some(stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return FromBeast(ec, "read body");
      pending.append(chunk.data(), chunk.size() - parser.get().body().size);
      std::erase(pending, '\r');  // events may end in CRLF pairs
      if (status == 200) ConsumeEvents(&pending, sent, &last, record);
    }
    if (status != 200) {
      record->error_code = StrCatStd("http_", status);
      record->error_message = pending.substr(0, 500);
    }
    return absl::OkStatus();
  }

  // Handles every complete event (ended by a blank line) in `pending` and drops it from there.
  void ConsumeEvents(std::string* pending, Clock::time_point sent, Clock::time_point* last, RequestRecord* record) {
    size_t end;
    while ((end = pending->find("\n\n")) != std::string::npos) {
      const std::string event = pending->substr(0, end);
      pending->erase(0, end + 2);
      const size_t data = event.find("data:");
      if (data == std::string::npos) continue;
      const std::string payload = event.substr(data + 5);
      if (payload.find("[DONE]") != std::string::npos) continue;
      const nlohmann::json j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) continue;
      const Clock::time_point now = Clock::now();
      if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
        // One event is one token for us and for llama.cpp / vLLM.
        if (IsTokenEvent(j["choices"][0])) OnTokens(1, sent, now, last, record);
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        const nlohmann::json& usage = j["usage"];
        record->prompt_tokens = usage.value("prompt_tokens", int64_t{0});
        // The server's count wins over the number of events (an event may carry several tokens).
        if (usage.contains("completion_tokens") && usage["completion_tokens"].is_number_integer()) {
          record->output_tokens = usage["completion_tokens"].get<int64_t>();
        }
        if (usage.contains("adak") && usage["adak"].is_object()) {
          const nlohmann::json& adak = usage["adak"];
          record->mean_k = adak.value("mean_k", 0.0);
          record->expert_flops = adak.value("expert_flops", 0.0);
          record->expert_flops_saved = adak.value("expert_flops_saved", 0.0);
        }
      }
    }
  }

  static absl::Status FromBeast(beast::error_code ec, std::string_view what) {
    if (ec == beast::error::timeout) return absl::DeadlineExceededError(StrCatStd(what, ": timed out"));
    return absl::UnavailableError(StrCatStd(what, ": ", ec.message()));
  }

  TargetOptions options_;
  std::string host_, port_, path_;
};

}  // namespace

bool IsTokenEvent(const nlohmann::json& choice) {
  if (!choice.is_object()) return false;
  const bool has_text =
      choice.contains("text") && choice["text"].is_string() && !choice["text"].get_ref<const std::string&>().empty();
  return has_text || (choice.contains("finish_reason") && choice["finish_reason"].is_null());
}

absl::StatusOr<std::unique_ptr<Target>> MakeTarget(const TargetOptions& options) {
  if (options.api == "grpc") {
    if (options.address.empty() || options.address.find("://") != std::string::npos) {
      return absl::InvalidArgumentError(
          StrCatStd("--target for --api grpc must be HOST:PORT, got '", options.address, "'"));
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    if (options.grpc_retries < 0 || options.grpc_retries > 4) {
      return absl::InvalidArgumentError(StrCatStd("--grpc-retries must be in [0, 4], got ", options.grpc_retries));
    }
    if (options.grpc_retries > 0) {
      args.SetServiceConfigJSON(StrCatStd(
          R"({"methodConfig": [{"name": [{"service": "adak.v1.Generation"}], "retryPolicy": {"maxAttempts": )",
          options.grpc_retries + 1, R"(, "initialBackoff": "0.2s", "maxBackoff": "2s", "backoffMultiplier": 2, )",
          R"("retryableStatusCodes": ["UNAVAILABLE"]}}]})"));
    }
    std::shared_ptr<grpc::Channel> channel =
        grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
      return absl::UnavailableError(StrCatStd("cannot connect to ", options.address, " (gRPC) within 10 s"));
    }
    return std::unique_ptr<Target>(new GrpcTarget(options, std::move(channel)));
  }
  if (options.api == "openai") {
    std::string_view rest = options.address;
    if (rest.substr(0, 7) != "http://") {
      return absl::InvalidArgumentError(
          StrCatStd("--target for --api openai must be http://HOST:PORT[/PATH], got '", options.address, "'"));
    }
    rest.remove_prefix(7);
    const size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::string path = slash == std::string_view::npos ? "/v1/completions" : std::string(rest.substr(slash));
    const size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == authority.size()) {
      return absl::InvalidArgumentError(
          StrCatStd("--target for --api openai needs HOST:PORT, got '", options.address, "'"));
    }
    return std::unique_ptr<Target>(new OpenAiTarget(options, std::string(authority.substr(0, colon)),
                                                    std::string(authority.substr(colon + 1)), path));
  }
  return absl::InvalidArgumentError(StrCatStd("--api must be grpc or openai, got '", options.api, "'"));
}

}  // namespace adak::loadtest
