#include "base/error_field.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace adak {

absl::Status WithErrorField(absl::Status status, std::string_view field) {
  if (status.ok()) return status;
  if (field.empty()) {
    status.ErasePayload(kErrorFieldTypeUrl);
  } else {
    status.SetPayload(kErrorFieldTypeUrl, absl::Cord(absl::string_view(field.data(), field.size())));
  }
  return status;
}

absl::Status InvalidFieldError(std::string_view field, std::string_view message) {
  return WithErrorField(absl::InvalidArgumentError(absl::string_view(message.data(), message.size())), field);
}

std::string ErrorField(const absl::Status& status) {
  absl::optional<absl::Cord> field = status.GetPayload(kErrorFieldTypeUrl);
  return field.has_value() ? std::string(*field) : std::string();
}

}  // namespace adak
