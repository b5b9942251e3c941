#pragma once
// The running core's cache sizes, for kernels that size their working sets to them.
//
//   l2_cache_bytes()         the per-core L2 (unified) cache in bytes, read once per process from the
//                            C library (glibc's sysconf, which asks CPUID on x86); kDefaultL2Bytes
//                            where it does not say (other C libraries, or a VM that hides it).
//   l3_cache_bytes()         the L3 that the running core shares with its neighbours (one CCX on AMD),
//                            read once per process from Linux's sysfs (cpu0's index3); kDefaultL3Bytes
//                            where it does not say. Not sysconf: glibc sums every L3 of the package
//                            there on AMD EPYC (384 MiB on a Zen 5 VM whose cores share 32 MiB).

#include <cstddef>
#include <cstdio>

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

// 8 MiB: no larger than the L3 a core shares on current x86 parts (16-32 MiB per AMD CCX, tens of
// MiB per Intel socket), so that a working set judged to outgrow it does.
inline constexpr std::size_t kDefaultL3Bytes = std::size_t(8) << 20;

inline std::size_t l3_cache_bytes() {
  static const std::size_t bytes = [] {
    std::size_t n = 0;
    if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
      unsigned long value = 0;
      char unit = 0;
      if (std::fscanf(f, "%lu%c", &value, &unit) >= 1)
        n = std::size_t(value) * (unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : unit == 'G' ? 1024 * 1024 * 1024 : 1);
      std::fclose(f);
    }
    return n > 0 ? n : kDefaultL3Bytes;
  }();
  return bytes;
}

}  // namespace tokenmix
