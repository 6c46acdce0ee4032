// The request field an error is about, carried on the absl::Status itself.
//
// Validation attaches the offending field where it detects the problem (InvalidFieldError, or
// WithErrorField on a status from elsewhere), as a Status payload under kErrorFieldTypeUrl whose value is
// the field name (e.g. "max_tokens", "routing.top_k"). The front ends read it back with ErrorField to fill
// the OpenAI error's `param` and the gRPC error details, so nothing ever parses an error message to learn
// the field. The payload survives copies and moves of the status and does not change its message.
// Stateless; safe from any thread.
#ifndef ADAK_BASE_ERROR_FIELD_H_
#define ADAK_BASE_ERROR_FIELD_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace adak {

// The payload type URL of the field name.
inline constexpr char kErrorFieldTypeUrl[] = "adak.dev/field";

// `status` with `field` attached (replacing a field it had). An OK status is returned unchanged (absl
// keeps no payloads on OK). An empty `field` removes the payload.
[[nodiscard]] absl::Status WithErrorField(absl::Status status, std::string_view field);

// InvalidArgument with `message` and `field` attached. The message should name the field and its limit.
[[nodiscard]] absl::Status InvalidFieldError(std::string_view field, std::string_view message);

// The field attached to `status`, or "" when it carries none.
[[nodiscard]] std::string ErrorField(const absl::Status& status);

}  // namespace adak

#endif  // ADAK_BASE_ERROR_FIELD_H_
