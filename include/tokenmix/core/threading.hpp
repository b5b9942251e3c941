#pragma once
// Opt-in threading over an Eigen thread pool (DESIGN §5).
//
// Entry points take an optional `const Eigen::ThreadPoolDevice*`; nullptr means "run on the calling
// thread". Work is described as `n_items` independent items whose results do not depend on which
// thread computes them, so outputs are bitwise identical for any thread count.

#include <algorithm>
#include <memory>

#include "tokenmix/core/tensor.hpp"

namespace tokenmix {

// Owns an Eigen thread pool and the device that entry points take:
//   tokenmix::ThreadPool pool(2);
//   ssm::selective_scan(..., {.device = pool.device()});
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads)
      : pool_(std::make_unique<Eigen::ThreadPool>(std::max(1, num_threads))),
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
template <class Body>
void parallel_for(const Eigen::ThreadPoolDevice* device, Index n_items, Body&& body) {
  if (n_items <= 0) return;
  const Index threads = device ? std::min<Index>(device->numThreads(), n_items) : 1;
  if (threads <= 1) {
    body(Index{0}, n_items);
    return;
  }
  auto range_begin = [&](Index r) { return n_items * r / threads; };
  Eigen::Barrier done(static_cast<unsigned>(threads - 1));
  for (Index r = 1; r < threads; ++r) {
    device->enqueueNoNotification([&, r] {
      body(range_begin(r), range_begin(r + 1));
      done.Notify();
    });
  }
  body(range_begin(0), range_begin(1));
  done.Wait();
}

}  // namespace detail
}  // namespace tokenmix
