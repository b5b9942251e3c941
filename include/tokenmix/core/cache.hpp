#pragma once
// The running core's cache sizes, for kernels that size their working sets to them.
//
//   l2_cache_bytes()         the per-core L2 (unified) cache in bytes, read once per process from the
//                            C library (glibc's sysconf, which asks CPUID on x86); kDefaultL2Bytes
//                            where it does not say (other C libraries, or a VM that hides it).

#include <cstddef>

#if defined(__has_include)
#if __has_include(<unistd.h>)
#include <unistd.h>
#endif
#endif

namespace tokenmix {

// 1 MiB: the smallest per-core L2 among the x86 cores of the last years (Zen 4; Intel's have 1.25-2 MiB),
// so a working set sized to a fraction of it fits wherever the size cannot be read.
inline constexpr std::size_t kDefaultL2Bytes = std::size_t(1) << 20;

inline std::size_t l2_cache_bytes() {
  static const std::size_t bytes = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long n = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (n > 0) return static_cast<std::size_t>(n);
#endif
    return kDefaultL2Bytes;
  }();
  return bytes;
}

}  // namespace tokenmix
