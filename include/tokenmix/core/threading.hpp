#pragma once
// Opt-in threading over an Eigen thread pool (DESIGN §5).
//
// Entry points take an optional `const Eigen::ThreadPoolDevice*`; nullptr means "run on the calling
// thread". Work is described as `n_items` independent items whose results do not depend on which
// thread computes them, so outputs are bitwise identical for any thread count.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix {

// Owns an Eigen thread pool and the device that entry points take:
//   tokenmix::ThreadPool pool(2);
//   ssm::SelectiveScanOptions o;  o.device = pool.device();
//   ssm::selective_scan(u, delta, A, B, C, o);
//
// num_threads counts the calling thread: parallel_for runs the first range on it, so the pool
// holds num_threads - 1 workers (an idle extra worker would only spin against the busy ones).
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads)
      : pool_(std::make_unique<Eigen::ThreadPool>(std::max(1, num_threads - 1))),
        device_(std::make_unique<Eigen::ThreadPoolDevice>(pool_.get(), std::max(1, num_threads))) {}
  const Eigen::ThreadPoolDevice* device() const { return device_.get(); }
  int num_threads() const { return device_->numThreads(); }

 private:
  std::unique_ptr<Eigen::ThreadPool> pool_;
  std::unique_ptr<Eigen::ThreadPoolDevice> device_;
};

namespace detail {

// Calls body(begin, end) over [0, n_items) split into one contiguous range per thread. The caller's
// thread takes the first range and waits for the rest. Equal ranges, not Eigen's cost-model blocks:
// the items of our kernels cost the same, and equal ranges give the best balance on few cores.
//
// The wait spins (with pause) for up to kSpinWaitMicroseconds before it blocks: a decode step
// makes dozens of parallel calls of a few to a few hundred µs each, and blocking on a condition
// variable costs ~5 µs of wake-up per call on this VM (measured 5.2-5.7 µs per call with a sleeping
// wait, 0.3 µs spinning). The spin is bounded so that a long-running range on another thread
// (or a vCPU time-sliced with ours) does not burn the caller's CPU.
inline constexpr int kSpinWaitMicroseconds = 50;

inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

template <class Body>
void parallel_for(const Eigen::ThreadPoolDevice* device, Index n_items, Body&& body) {
  if (n_items <= 0) return;
  const Index threads = device ? std::min<Index>(device->numThreads(), n_items) : 1;
  if (threads <= 1) {
    body(Index{0}, n_items);
    return;
  }
  auto range_begin = [&](Index r) { return n_items * r / threads; };
  std::atomic<Index> pending(threads - 1);
  Eigen::Barrier done(static_cast<unsigned>(threads - 1));
  // Ranges lo .. hi-1: hands the upper half to a worker (which splits it the same way) until one
  // range is left, and runs it. Waking a worker costs its waker ~2.4 µs (a futex call per task, on
  // a 16-core VM), so waking 15 from the calling thread delayed its own range and the last worker's
  // by ~35 µs; halving wakes them in log2(threads) rounds. Measured there (parallel_for over 16
  // ranges of 50-200 µs of work, medians of 1000 calls, two runs): 25-28 µs over the work instead
  // of 37-41 µs; 8 threads 17-18 instead of 19-21; 2 threads the same (1.5-2.0 µs).
  std::function<void(Index, Index)> fork = [&](Index lo, Index hi) {
    while (hi - lo > 1) {
      const Index mid = (lo + hi + 1) / 2;
      device->enqueueNoNotification([&fork, mid, hi] { fork(mid, hi); });
      hi = mid;
    }
    body(range_begin(lo), range_begin(lo + 1));
    if (lo > 0) {
      pending.fetch_sub(1, std::memory_order_release);
      done.Notify();
    }
  };
  fork(0, threads);  // the calling thread runs range 0
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinWaitMicroseconds);
  for (int i = 1; pending.load(std::memory_order_acquire) != 0; ++i) {
    spin_pause();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > spin_until) break;
  }
  done.Wait();  // returns at once when every range has finished; the Barrier also orders their writes
}

}  // namespace detail
}  // namespace tokenmix
