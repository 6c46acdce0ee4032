// engine/device.h: the --device spellings ParseDevice accepts and refuses, DeviceName's canonical form, and a
// Session built on a device the registry cannot give (the error is CreateBackend's, never an abort).
#include "engine/device.h"

#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/session.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr const char* kAccepted = "accepted: cpu, cuda, cuda:N (N an integer in 0..63)";

TEST(ParseDevice, AcceptsCpuCudaAndCudaN) {
  struct Case {
    const char* text;
    const char* backend;
    int index;
  };
  for (const Case& c : std::vector<Case>{{"cpu", "cpu", 0},
                                         {"cuda", "cuda", 0},
                                         {"cuda:0", "cuda", 0},
                                         {"cuda:1", "cuda", 1},
                                         {"cuda:07", "cuda", 7},
                                         {"cuda:42", "cuda", 42},
                                         {"cuda:63", "cuda", kMaxDeviceIndex}}) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<DeviceSpec> device = ParseDevice(c.text);
    ASSERT_THAT(device.status(), IsOk());
    EXPECT_EQ(device->backend, c.backend);
    EXPECT_EQ(device->index, c.index);
  }
}

TEST(ParseDevice, RefusesUnknownBackendsNamingTheTextAndTheAcceptedForms) {
  for (const char* text : {"tpu", "", "CPU", "Cuda", "gpu", "cuda0", "cudax", " cpu", "cpu ", "metal:0"}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(
        ParseDevice(text),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr(std::string("device '") + text + "' names no known backend"), HasSubstr(kAccepted))));
  }
}

TEST(ParseDevice, RefusesAnIndexOnTheCpu) {
  for (const char* text : {"cpu:0", "cpu:1", "cpu:"}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(
        ParseDevice(text),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr(std::string("device '") + text + "' has an index, but the cpu device takes none"),
                       HasSubstr(kAccepted))));
  }
}

TEST(ParseDevice, RefusesMissingNonNumericAndOutOfRangeIndices) {
  for (const char* text : {"cuda:", "cuda:64", "cuda:99", "cuda:100", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:1 ",
                           "cuda:x", "cuda:1x", "cuda:0x1", "cuda:1:2", "cuda:99999999999999999999", "cuda:1.0"}) {
    SCOPED_TRACE(text);
    EXPECT_THAT(ParseDevice(text), StatusIs(absl::StatusCode::kInvalidArgument,
                                            AllOf(HasSubstr("' has an invalid device index"), HasSubstr(kAccepted))));
  }
  EXPECT_THAT(ParseDevice("cuda:64"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("device 'cuda:64'")));
}

TEST(ParseDevice, QuotesAtMost32CharactersOfTheText) {
  const std::string text = "cuda:" + std::string(1000, '7');
  absl::StatusOr<DeviceSpec> device = ParseDevice(text);
  ASSERT_FALSE(device.ok());
  EXPECT_THAT(std::string(device.status().message()), HasSubstr("device '" + text.substr(0, 32) + "' "));
  EXPECT_LT(device.status().message().size(), 200u);
}

TEST(DeviceName, IsTheCanonicalSpellingAndParsesBack) {
  EXPECT_EQ(DeviceName(DeviceSpec{}), "cpu");
  EXPECT_EQ(DeviceName({.backend = "cuda", .index = 0}), "cuda:0");
  EXPECT_EQ(DeviceName({.backend = "cuda", .index = 3}), "cuda:3");
  for (const char* text : {"cpu", "cuda", "cuda:5", "cuda:63"}) {
    absl::StatusOr<DeviceSpec> device = ParseDevice(text);
    ASSERT_THAT(device.status(), IsOk());
    absl::StatusOr<DeviceSpec> again = ParseDevice(DeviceName(*device));
    ASSERT_THAT(again.status(), IsOk()) << text;
    EXPECT_EQ(again->backend, device->backend);
    EXPECT_EQ(again->index, device->index);
  }
}

// Whether this binary has a "cuda" backend with a device here.
bool CudaAvailable() {
  for (const BackendRegistration& r : RegisteredBackends()) {
    if (r.name == "cuda") return r.available();
  }
  return false;
}

TEST(SessionDevice, DefaultsToTheCpu) {
  const SessionOptions options;
  EXPECT_EQ(options.device.backend, "cpu");
  EXPECT_EQ(options.device.index, 0);
}

// A session on a device the registry cannot give fails with CreateBackend's error.
TEST(SessionDevice, AbsentDeviceIsCreateBackendsError) {
  auto model = LoadModel(::adak::testing::SourceDir() / "models/stories-moe-small");
  ASSERT_THAT(model.status(), IsOk());
  SessionOptions options;
  options.device = {.backend = "tpu", .index = 0};
  EXPECT_THAT(Session::Create(**model, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backend 'tpu' is not registered")));
  if (CudaAvailable()) GTEST_SKIP() << "a CUDA device is present: the refusal of `cuda` is not testable here";
  options.device = {.backend = "cuda", .index = 0};
  const absl::Status status = Session::Create(**model, options).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("cuda"), AnyOf(HasSubstr("has no device on this machine"), HasSubstr("not registered"))));
}

}  // namespace
}  // namespace adak::engine
