#pragma once
// The xsimd architectures compiled into a test TU (by its -m flags), for typed tests that run
// every kernel instantiation against the oracle (DESIGN §5), and whether the running CPU has them.
//   AllCompiledArchs           every compiled arch (simd math: each may round differently)
//   RepresentativeArchs        one per vector width and FMA class (kernels: sse2, avx, fma3<avx2>,
//                              avx512bw), enough to cover every code path at a quarter of the time
// (both only the native arch in the sanitizer build, see below)
// Use TOKENMIX_SKIP_IF_UNAVAILABLE(Arch) at the top of a typed test.

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "tokenmix/simd/arch.hpp"

namespace tokenmix::testing {


template <class... Ts>
struct type_list {};
struct end_of_list {};

// Drops the end_of_list sentinel that lets every entry below end with a comma.
template <class Out, class... In>
struct drop_sentinel {
  using type = Out;
};
template <class... Out, class T, class... Rest>
struct drop_sentinel<type_list<Out...>, T, Rest...>
    : drop_sentinel<std::conditional_t<std::is_same_v<T, end_of_list>, type_list<Out...>,
                                       type_list<Out..., T>>,
                    Rest...> {};

using CompiledArchList = typename drop_sentinel<type_list<>,
#if XSIMD_WITH_SSE2
                                             xsimd::sse2,
#endif
#if XSIMD_WITH_SSE3
                                             xsimd::sse3,
#endif
#if XSIMD_WITH_SSSE3
                                             xsimd::ssse3,
#endif
#if XSIMD_WITH_SSE4_1
                                             xsimd::sse4_1,
#endif
#if XSIMD_WITH_SSE4_2
                                             xsimd::sse4_2,
#endif
#if XSIMD_WITH_FMA3_SSE
                                             xsimd::fma3<xsimd::sse4_2>,
#endif
#if XSIMD_WITH_FMA4
                                             xsimd::fma4,
#endif
#if XSIMD_WITH_AVX
                                             xsimd::avx,
#endif
#if XSIMD_WITH_FMA3_AVX
                                             xsimd::fma3<xsimd::avx>,
#endif
#if XSIMD_WITH_AVX2
                                             xsimd::avx2,
#endif
#if XSIMD_WITH_FMA3_AVX2
                                             xsimd::fma3<xsimd::avx2>,
#endif
#if XSIMD_WITH_AVX512F
                                             xsimd::avx512f,
#endif
#if XSIMD_WITH_AVX512CD
                                             xsimd::avx512cd,
#endif
#if XSIMD_WITH_AVX512DQ
                                             xsimd::avx512dq,
#endif
#if XSIMD_WITH_AVX512BW
                                             xsimd::avx512bw,
#endif
#if XSIMD_WITH_NEON
                                             xsimd::neon,
#endif
#if XSIMD_WITH_NEON64
                                             xsimd::neon64,
#endif
                                             end_of_list>::type;

// The same list as gtest types, for TYPED_TEST_SUITE.
template <class L>
struct to_gtest_types;
template <class... Ts>
struct to_gtest_types<type_list<Ts...>> {
  using type = ::testing::Types<Ts...>;
};

// Whether the running CPU supports Arch. On x86 with GCC/Clang this asks __builtin_cpu_supports,
// which also checks that the OS saves the AVX / AVX-512 registers (XCR0): xsimd 8.1's
// available_architectures() reads CPUID bits only, and reads the AVX bit from leaf 0x80000001
// instead of leaf 1, so it reports no avx / fma3<avx> on CPUs that have them (seen on AMD Zen 5).
template <class Arch>
bool cpu_has() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define TM_HAS(feature) (__builtin_cpu_supports(feature) != 0)
  __builtin_cpu_init();
  if constexpr (std::is_same_v<Arch, xsimd::sse2>) return TM_HAS("sse2");
  else if constexpr (std::is_same_v<Arch, xsimd::sse3>) return TM_HAS("sse3");
  else if constexpr (std::is_same_v<Arch, xsimd::ssse3>) return TM_HAS("ssse3");
  else if constexpr (std::is_same_v<Arch, xsimd::sse4_1>) return TM_HAS("sse4.1");
  else if constexpr (std::is_same_v<Arch, xsimd::sse4_2>) return TM_HAS("sse4.2");
  else if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::sse4_2>>) return TM_HAS("sse4.2") && TM_HAS("fma");
  else if constexpr (std::is_same_v<Arch, xsimd::fma4>) return TM_HAS("fma4");
  else if constexpr (std::is_same_v<Arch, xsimd::avx>) return TM_HAS("avx");
  else if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx>>) return TM_HAS("avx") && TM_HAS("fma");
  else if constexpr (std::is_same_v<Arch, xsimd::avx2>) return TM_HAS("avx2");
  else if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) return TM_HAS("avx2") && TM_HAS("fma");
  else if constexpr (std::is_same_v<Arch, xsimd::avx512f>) return TM_HAS("avx512f");
  else if constexpr (std::is_same_v<Arch, xsimd::avx512cd>) return TM_HAS("avx512f") && TM_HAS("avx512cd");
  else if constexpr (std::is_same_v<Arch, xsimd::avx512dq>)
    return TM_HAS("avx512f") && TM_HAS("avx512cd") && TM_HAS("avx512dq");
  else if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
    return TM_HAS("avx512f") && TM_HAS("avx512cd") && TM_HAS("avx512dq") && TM_HAS("avx512bw");
  else return false;
#undef TM_HAS
#else
  const auto a = xsimd::available_architectures();
  if constexpr (std::is_same_v<Arch, xsimd::neon>) return a.neon;
  else if constexpr (std::is_same_v<Arch, xsimd::neon64>) return a.neon64;
  else return (a.best >= Arch::version());  // x86 without GCC/Clang: xsimd's (CPUID-only) answer
#endif
}

// The sanitizer build (tests/CMakeLists.txt defines TOKENMIX_TEST_NATIVE_ARCH_ONLY there) runs every
// typed test on the native arch only: under ASan + UBSan each arch instantiation of a kernel test
// takes 2-5 minutes to compile (the selective-scan tests ~9 minutes for four archs), which pushed
// scripts/test past its 40-minute budget on the 2-core CI machine. The release pass runs every arch.
#if defined(TOKENMIX_TEST_NATIVE_ARCH_ONLY)
using AllCompiledArchs = ::testing::Types<::tokenmix::simd::default_arch>;
using RepresentativeArchs = ::testing::Types<::tokenmix::simd::default_arch>;
#else
using AllCompiledArchs = typename to_gtest_types<CompiledArchList>::type;

using RepresentativeArchs = typename to_gtest_types<typename drop_sentinel<type_list<>,
#if XSIMD_WITH_SSE2
                                                                           xsimd::sse2,
#endif
#if XSIMD_WITH_AVX
                                                                           xsimd::avx,
#endif
#if XSIMD_WITH_FMA3_AVX2
                                                                           xsimd::fma3<xsimd::avx2>,
#endif
#if XSIMD_WITH_AVX512BW
                                                                           xsimd::avx512bw,
#endif
#if XSIMD_WITH_NEON64
                                                                           xsimd::neon64,
#endif
                                                                           end_of_list>::type>::type;
#endif


inline std::string arch_name(const char* name) {
  std::string s(name);
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

struct ArchNames {
  template <class Arch>
  static std::string GetName(int) {
    return arch_name(Arch::name());
  }
};

}  // namespace tokenmix::testing

// The one skip in the suite, and why: a typed test instantiated for an instruction set that the
// compiler supports but the CPU running the test lacks (e.g. AVX-512 code on an AVX2-only CI
// machine) would die of SIGILL, so it is skipped with the arch named. On this project's machines
// (Zen 5, AVX-512) every compiled arch is available and nothing is skipped.
#define TOKENMIX_SKIP_IF_UNAVAILABLE(Arch) \
  if (!::tokenmix::testing::cpu_has<Arch>()) GTEST_SKIP() << "the CPU lacks " << Arch::name()
