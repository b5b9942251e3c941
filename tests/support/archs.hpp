#pragma once
// The xsimd architectures compiled into a test TU, for typed tests that run every kernel
// instantiation against the oracle (DESIGN §5). An arch compiled in but missing on the CPU running
// the test is skipped at runtime (TOKENMIX_SKIP_IF_UNAVAILABLE).

#include <gtest/gtest.h>

#include <xsimd/xsimd.hpp>

namespace tokenmix::testing {

using CompiledArchs = ::testing::Types<
#if XSIMD_WITH_AVX512BW
    xsimd::avx512bw,
#endif
#if XSIMD_WITH_FMA3_AVX2
    xsimd::fma3<xsimd::avx2>,
#endif
#if XSIMD_WITH_AVX
    xsimd::avx,
#endif
    xsimd::sse2>;

template <class Arch>
bool arch_available() {
  return Arch::version() <= xsimd::available_architectures().best;
}

// gtest prints the arch of each typed-test instance by its name.
struct ArchNames {
  template <class Arch>
  static std::string GetName(int) {
    return Arch::name();
  }
};

}  // namespace tokenmix::testing

#define TOKENMIX_SKIP_IF_UNAVAILABLE(Arch) \
  if (!::tokenmix::testing::arch_available<Arch>()) GTEST_SKIP() << Arch::name() << " not available on this CPU"
