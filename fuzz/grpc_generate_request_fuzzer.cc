// libFuzzer target: the bytes of an adak.v1.GenerateRequest as they arrive on the wire, decoded by protobuf,
// mapped to the shared ApiRequest (ApiRequestFromProto) and validated by the shared admission
// (BuildRequest). Any input must come back as a value or an error Status.
#include <cstddef>
#include <cstdint>

#include "adak/v1/generation.pb.h"
#include "fuzz/fuzz_model.h"
#include "server/admission.h"
#include "server/grpc/convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const adak::server::ServiceContext& context = adak::fuzz::DefaultContext();
  adak::v1::GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  (void)adak::server::BuildRequest(adak::server::ApiRequestFromProto(request), context);
  return 0;
}
