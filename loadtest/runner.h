// Drives a Target with a Workload, closed or open loop, and collects one RequestRecord per measured request.
//
// Closed loop (`concurrency` > 0): that many clients, each sending its next request as soon as its last one
// ended. Open loop (`rate` > 0): requests are sent at the Workload's Gamma arrival times whatever the server
// does, by up to `max_inflight` client threads (an arrival that finds them all busy waits for one; its
// delay shows in `late_requests` of the result). Either way the run stops after `requests` measured requests
// or once `duration` has passed since the first measured send (no new request starts after it; running ones
// finish), whichever comes first. The first `warmup` requests are sent before and not measured. A progress
// line goes to `progress` (nullptr: none) about once a second. Run() blocks; it is not reentrant.
#ifndef ADAK_LOADTEST_RUNNER_H_
#define ADAK_LOADTEST_RUNNER_H_

#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/time/time.h"
#include "loadtest/report.h"
#include "loadtest/target.h"
#include "loadtest/workload.h"

namespace adak::loadtest {

struct RunOptions {
  int64_t concurrency = 0;  // closed loop when > 0
  double rate = 0.0;        // open loop (requests/s) when > 0
  double burstiness = 1.0;
  int64_t max_inflight = 256;
  int64_t requests = 0;                                // 0 = bounded by duration only
  absl::Duration duration = absl::InfiniteDuration();  // bounded by requests only when infinite
  int64_t warmup = 0;
  uint64_t seed = 0;
  std::FILE* progress = nullptr;
};

struct RunResult {
  std::vector<RequestRecord> records;  // measured requests, by index
  double wall_s = 0.0;                 // first measured send to last measured completion
  int64_t late_requests = 0;           // open loop: arrivals sent more than 10 ms after their time
};

// REQUIRES: exactly one of concurrency > 0 and rate > 0; requests > 0 or a finite duration.
[[nodiscard]] RunResult Run(Target& target, const Workload& workload, const RunOptions& options);

}  // namespace adak::loadtest

#endif  // ADAK_LOADTEST_RUNNER_H_
