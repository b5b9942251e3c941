// Float buffers for benchmarks whose inputs outgrow the TLB's reach: 64-byte aligned as Eigen's
// tensors, or in memory advised for transparent huge pages (2 MiB pages where the kernel's THP mode is
// "madvise" or "always": a 128 MiB working set then takes 64 TLB entries instead of 32768).
//
//   bench::FloatBuffer buf = bench::aligned_floats(n);     // n floats, 64-byte aligned, zeroed
//   bench::FloatBuffer big = bench::huge_page_floats(n);   // the same, 2 MiB aligned, MADV_HUGEPAGE
//
// The advice only asks: on other systems, or with THP "never", huge_page_floats gives the same
// memory as aligned_floats (2 MiB aligned). Pages are touched (zeroed) here, so the huge pages, if
// any, exist before the first timed call.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tokenmix::bench {

struct FreeDeleter {
  void operator()(float* p) const noexcept { std::free(p); }
};
using FloatBuffer = std::unique_ptr<float[], FreeDeleter>;

namespace detail {
inline FloatBuffer zeroed_floats(std::size_t n, std::size_t alignment, bool huge) {
  const std::size_t bytes = (std::max<std::size_t>(n, 1) * sizeof(float) + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, bytes);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice: nothing to do if it is declined
#else
  (void)huge;
#endif
  std::memset(p, 0, bytes);
  return FloatBuffer(static_cast<float*>(p));
}
}  // namespace detail

inline FloatBuffer aligned_floats(std::size_t n) { return detail::zeroed_floats(n, 64, false); }

inline FloatBuffer huge_page_floats(std::size_t n) { return detail::zeroed_floats(n, std::size_t{2} << 20, true); }

}  // namespace tokenmix::bench
