#include "server/grpc/call_cancellation.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace adak::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Records every id the CallCancellation cancels.
class Recorder {
 public:
  CallCancellation::CancelFn Fn() {
    return [this](uint64_t id, scheduler::Scheduler::CancelReason reason) {
      absl::MutexLock lock(&mu_);
      ids_.push_back(id);
      reasons_.push_back(reason);
    };
  }
  std::vector<scheduler::Scheduler::CancelReason> reasons() {
    absl::MutexLock lock(&mu_);
    return reasons_;
  }
  std::vector<uint64_t> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> ids_;
  std::vector<scheduler::Scheduler::CancelReason> reasons_;
};

// gRPC cancels a call whose deadline expired: that is passed on as a deadline, not as a client cancel.
TEST(CallCancellationTest, CancelAfterTheDeadlineIsADeadline) {
  Recorder before;
  CallCancellation live(before.Fn(), absl::Now() + absl::Hours(1));
  live.SetIds({7});
  live.Cancel();
  EXPECT_THAT(before.reasons(), ElementsAre(scheduler::Scheduler::CancelReason::kClient));
  Recorder after;
  CallCancellation expired(after.Fn(), absl::Now() - absl::Milliseconds(1));
  expired.Cancel();
  expired.SetIds({8});
  EXPECT_THAT(after.ids(), ElementsAre(8u));
  EXPECT_THAT(after.reasons(), ElementsAre(scheduler::Scheduler::CancelReason::kDeadline));
}

TEST(CallCancellationTest, NothingIsCancelledWithoutCancel) {
  Recorder recorder;
  CallCancellation cancellation(recorder.Fn());
  cancellation.SetIds({7, 8});
  EXPECT_FALSE(cancellation.cancelled());
  EXPECT_THAT(recorder.ids(), IsEmpty());
}

TEST(CallCancellationTest, CancelAfterIdsCancelsThem) {
  Recorder recorder;
  CallCancellation cancellation(recorder.Fn());
  cancellation.SetIds({7, 8});
  cancellation.Cancel();
  EXPECT_TRUE(cancellation.cancelled());
  EXPECT_THAT(recorder.ids(), ElementsAre(7, 8));
}

TEST(CallCancellationTest, CancelBeforeIdsCancelsThemWhenTheyArrive) {
  Recorder recorder;
  CallCancellation cancellation(recorder.Fn());
  cancellation.Cancel();
  EXPECT_TRUE(cancellation.cancelled());
  EXPECT_THAT(recorder.ids(), IsEmpty());
  cancellation.SetIds({3});
  EXPECT_THAT(recorder.ids(), ElementsAre(3));
}

TEST(CallCancellationTest, RepeatedCancelStaysCancelled) {
  Recorder recorder;
  CallCancellation cancellation(recorder.Fn());
  cancellation.SetIds({5});
  cancellation.Cancel();
  cancellation.Cancel();
  EXPECT_TRUE(cancellation.cancelled());
  EXPECT_THAT(recorder.ids(), ElementsAre(5, 5));  // the scheduler's Cancel is idempotent
}

// Whatever the interleaving of a client's cancel and the admission's SetIds, every id gets cancelled.
TEST(CallCancellationTest, RacingCancelAndSetIdsNeverLosesAnId) {
  for (int round = 0; round < 500; ++round) {
    Recorder recorder;
    CallCancellation cancellation(recorder.Fn());
    std::atomic<bool> go{false};
    std::thread canceller([&] {
      while (!go.load()) {
      }
      cancellation.Cancel();
    });
    go.store(true);
    cancellation.SetIds({static_cast<uint64_t>(round), static_cast<uint64_t>(round) + 1000});
    canceller.join();
    std::vector<uint64_t> ids = recorder.ids();
    ASSERT_THAT(ids, ::testing::Contains(static_cast<uint64_t>(round))) << "round " << round;
    ASSERT_THAT(ids, ::testing::Contains(static_cast<uint64_t>(round) + 1000)) << "round " << round;
  }
}

}  // namespace
}  // namespace adak::server
