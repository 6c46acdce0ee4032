// libFuzzer target: the body of POST /v1/chat/completions as a remote party sends it, through the gateway's
// JSON mapping (ParseChatRequest: messages normalised and rendered by the default model's chat template under
// the render limits) and the shared admission (BuildRequest) of every candidate. Any input must come back as
// a value or an error Status: a crash, a sanitizer report or a timeout is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_model.h"
#include "server/admission.h"
#include "server/http/chat_completions.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const adak::server::ServiceContext& context = adak::fuzz::DefaultContext();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<adak::server::CompletionCall> call = adak::server::ParseChatRequest(body, context);
  if (!call.ok()) return 0;
  for (int64_t c = 0; c < call->candidates(); ++c)
    (void)adak::server::BuildRequest(CandidateRequest(*call, c), context);
  return 0;
}
