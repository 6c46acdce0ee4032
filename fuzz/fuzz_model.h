// The model the request fuzzers validate against: the repository's default model (models/stories-moe-small),
// loaded once per fuzzer process with its allocator (allocator.safetensors, when the directory has one), and a
// ServiceContext over them without a scheduler (admission then checks requests against the model's own context
// and vocabulary, as LimitsFor documents).
#ifndef ADAK_FUZZ_FUZZ_MODEL_H_
#define ADAK_FUZZ_FUZZ_MODEL_H_

#include "server/service_context.h"

namespace adak::fuzz {

// The context over the default model (ADAK_FUZZ_MODEL overrides the directory). Aborts with a message when
// the model does not load: a fuzzer without its model would only exercise the error path.
const server::ServiceContext& DefaultContext();

}  // namespace adak::fuzz

#endif  // ADAK_FUZZ_FUZZ_MODEL_H_
