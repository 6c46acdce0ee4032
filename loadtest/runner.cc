#include "loadtest/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace adak::loadtest {
namespace {

using Clock = std::chrono::steady_clock;

// Counters the progress line reads.
struct Progress {
  std::atomic<int64_t> sent{0}, done{0}, errors{0}, tokens{0};
};

// Prints the progress line about once a second until stopped.
class ProgressPrinter {
 public:
  ProgressPrinter(std::FILE* out, const Progress& p, Clock::time_point start) : out_(out) {
    if (out_ == nullptr) return;
    thread_ = std::thread([this, &p, start] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
        const double s = std::chrono::duration<double>(Clock::now() - start).count();
        const int64_t sent = p.sent.load(), done = p.done.load();
        std::fprintf(out_, "\r[%6.1fs] sent %lld done %lld errors %lld in flight %lld  %.1f tok/s   ", s,
                     static_cast<long long>(sent), static_cast<long long>(done),
                     static_cast<long long>(p.errors.load()), static_cast<long long>(sent - done),
                     s > 0 ? static_cast<double>(p.tokens.load()) / s : 0.0);
        std::fflush(out_);
      }
    });
  }
  ~ProgressPrinter() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(out_, "\n");
  }

 private:
  std::FILE* out_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Unmeasured requests [0, warmup) with `clients` threads in a closed loop.
void WarmUp(Target& target, const Workload& workload, int64_t warmup, int64_t clients) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (int64_t c = 0; c < std::min(clients, warmup); ++c) {
    threads.emplace_back([&] {
      for (int64_t i = next++; i < warmup; i = next++) {
        const RequestSpec spec = workload.Request(i);
        RequestRecord ignored;
        target.Send(spec, workload.arms()[spec.arm], start, &ignored);
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace

RunResult Run(Target& target, const Workload& workload, const RunOptions& o) {
  const int64_t clients = o.concurrency > 0 ? o.concurrency : std::max<int64_t>(1, o.max_inflight);
  WarmUp(target, workload, o.warmup, clients);

  const Clock::time_point start = Clock::now();
  const bool bounded_time = o.duration != absl::InfiniteDuration();
  const Clock::time_point deadline =
      bounded_time ? start + std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(o.duration))
                   : Clock::time_point::max();
  const int64_t limit = o.requests > 0 ? o.requests : INT64_MAX;
  Progress progress;
  std::mutex mu;
  RunResult result;

  // Sends measured request i (workload index warmup + i) and keeps its record.
  auto send = [&](int64_t i) {
    const RequestSpec spec = workload.Request(o.warmup + i);
    RequestRecord record;
    record.index = i;
    record.arm = spec.arm;
    ++progress.sent;
    target.Send(spec, workload.arms()[spec.arm], start, &record);
    progress.tokens += record.output_tokens;
    if (!record.ok) ++progress.errors;
    ++progress.done;
    std::lock_guard<std::mutex> lock(mu);
    result.records.push_back(std::move(record));
  };

  // What the client threads share, declared before them (they use it until they are joined): the closed
  // loop's next request index; the open loop's queue, where the dispatcher puts each arrival at its time and
  // idle clients take them in order.
  std::atomic<int64_t> next{0};
  std::deque<std::pair<int64_t, Clock::time_point>> queue;
  std::condition_variable cv;
  bool closed = false;
  {
    ProgressPrinter printer(o.progress, progress, start);
    std::vector<std::thread> threads;
    if (o.concurrency > 0) {
      for (int64_t c = 0; c < o.concurrency; ++c) {
        threads.emplace_back([&] {
          for (int64_t i = next++; i < limit && Clock::now() < deadline; i = next++) send(i);
        });
      }
    } else {
      for (int64_t c = 0; c < clients; ++c) {
        threads.emplace_back([&] {
          while (true) {
            std::pair<int64_t, Clock::time_point> item;
            {
              std::unique_lock<std::mutex> lock(mu);
              cv.wait(lock, [&] { return closed || !queue.empty(); });
              if (queue.empty()) return;
              item = queue.front();
              queue.pop_front();
              if (Clock::now() - item.second > std::chrono::milliseconds(10)) ++result.late_requests;
            }
            send(item.first);
          }
        });
      }
      ArrivalProcess arrivals(o.rate, o.burstiness, o.seed);
      for (int64_t i = 0; i < limit; ++i) {
        const Clock::time_point at =
            start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals.Next()));
        if (at >= deadline) break;
        std::this_thread::sleep_until(at);
        {
          std::lock_guard<std::mutex> lock(mu);
          queue.emplace_back(i, at);
        }
        cv.notify_one();
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        closed = true;
      }
      cv.notify_all();
    }
    for (std::thread& t : threads) t.join();
  }

  std::sort(result.records.begin(), result.records.end(),
            [](const RequestRecord& a, const RequestRecord& b) { return a.index < b.index; });
  double first = 0.0, last = 0.0;
  for (size_t r = 0; r < result.records.size(); ++r) {
    const RequestRecord& rec = result.records[r];
    first = r == 0 ? rec.sent_s : std::min(first, rec.sent_s);
    last = std::max(last, rec.sent_s + rec.e2e_s);
  }
  result.wall_s = std::max(0.0, last - first);
  return result;
}

}  // namespace adak::loadtest
