// Time source of the scheduler (deadlines, latencies), replaceable by a fake in tests.
#ifndef ADAK_SCHEDULER_CLOCK_H_
#define ADAK_SCHEDULER_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace adak::scheduler {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual absl::Time Now() const = 0;
};

// absl::Now(). Thread-safe.
class RealClock final : public Clock {
 public:
  [[nodiscard]] absl::Time Now() const override { return absl::Now(); }
  [[nodiscard]] static RealClock* Get() {
    static RealClock clock;
    return &clock;
  }
};

}  // namespace adak::scheduler

#endif  // ADAK_SCHEDULER_CLOCK_H_
