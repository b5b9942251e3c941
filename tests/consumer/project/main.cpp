// Downstream-consumer smoke test (tests/consumer, DESIGN §8). Built against the installed package
// (find_package and pkg-config) and against the source tree (add_subdirectory), always with plain
// flags (no -march): everything it needs must come from tokenmix's exported usage requirements.
// Prints a checksum and returns 0; a non-finite result or a wrong output shape returns 1.
#include <cmath>
#include <cstdio>

// ---- LEAD: switch this to 1 once <tokenmix/tokenmix.hpp> provides ssm::selective_scan ----------------
#ifndef TOKENMIX_CONSUMER_USE_UMBRELLA
#define TOKENMIX_CONSUMER_USE_UMBRELLA 1
#endif

#if TOKENMIX_CONSUMER_USE_UMBRELLA
#include <tokenmix/tokenmix.hpp>
#else
#include <tokenmix/core/tensor.hpp>
#include <tokenmix/simd/exp.hpp>
#endif
#include <tokenmix/version.hpp>

int main() {
  using tokenmix::Index;
  constexpr Index kBatch = 2, kLen = 5, kDim = 8, kGroups = 2, kState = 4;

  // u, delta: [B, L, D]; deterministic values, delta > 0 like a post-softplus step.
  tokenmix::Tensor<float, 3> u(kBatch, kLen, kDim), delta(kBatch, kLen, kDim);
  for (Index i = 0; i < u.size(); ++i) {
    u.data()[i] = 0.25f * static_cast<float>(i % 7) - 0.75f;
    delta.data()[i] = 0.05f + 0.01f * static_cast<float>(i % 5);
  }

#if TOKENMIX_CONSUMER_USE_UMBRELLA
  tokenmix::Tensor<float, 2> A(kDim, kState);                                           // [D, N]
  tokenmix::Tensor<float, 4> B(kBatch, kLen, kGroups, kState), C(kBatch, kLen, kGroups, kState);  // [B, L, G, N]
  for (Index d = 0; d < kDim; ++d)
    for (Index n = 0; n < kState; ++n) A(d, n) = -static_cast<float>(n + 1);
  for (Index i = 0; i < B.size(); ++i) {
    B.data()[i] = 0.1f * static_cast<float>(i % 3) - 0.1f;
    C.data()[i] = 0.2f - 0.05f * static_cast<float>(i % 4);
  }
  const auto result = tokenmix::ssm::selective_scan(u, delta, A, B, C);
  const tokenmix::Tensor<float, 3>& out = result.out;
#else
  // Until the umbrella header exists: exp(u * delta) with tokenmix's SIMD exp.
  (void)kGroups;
  (void)kState;
  using Arch = tokenmix::simd::default_arch;
  constexpr Index kLanes = static_cast<Index>(tokenmix::simd::lanes<Arch>);
  static_assert(kBatch * kLen * kDim % kLanes == 0, "no scalar tail in this smoke test");
  tokenmix::Tensor<float, 3> out(kBatch, kLen, kDim);
  for (Index i = 0; i < out.size(); i += kLanes) {
    const auto x = tokenmix::simd::load<Arch>(u.data() + i) * tokenmix::simd::load<Arch>(delta.data() + i);
    tokenmix::simd::store<Arch>(out.data() + i, tokenmix::simd::exp<Arch>(x));
  }
#endif

  if (out.dimension(0) != kBatch || out.dimension(1) != kLen || out.dimension(2) != kDim) {
    std::fprintf(stderr, "tokenmix consumer: out has the wrong shape\n");
    return 1;
  }
  double checksum = 0.0;
  for (Index k = 0; k < out.size(); ++k) checksum += static_cast<double>(out.data()[k]) * static_cast<double>(1 + k % 7);
  if (!std::isfinite(checksum)) {
    std::fprintf(stderr, "tokenmix consumer: non-finite checksum\n");
    return 1;
  }
  std::printf("tokenmix %d.%d.%d consumer (simd arch %s): checksum %.6f\n", TOKENMIX_VERSION_MAJOR,
              TOKENMIX_VERSION_MINOR, TOKENMIX_VERSION_PATCH, tokenmix::simd::default_arch::name(), checksum);
  return 0;
}
