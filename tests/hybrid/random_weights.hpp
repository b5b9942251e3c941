#pragma once
// Random parameters of A2Mamba's modules for the hybrid tests (tests/hybrid/a2ssm_test.cpp,
// mass_test.cpp, tests/blocks/a2mamba_test.cpp): scales that keep every branch's contribution O(1),
// so a wrong branch shows in the comparison.

#include <cmath>
#include <cstdint>

#include "support/random.hpp"
#include "tokenmix/hybrid/mass_types.hpp"

namespace tokenmix::testing {

inline hybrid::A2ssmWeights random_a2ssm_weights(const hybrid::A2ssmConfig& c, std::uint64_t seed) {
  Rng rng(seed);
  const Index C = c.channels, N = c.d_state, R = c.rank(), nh = c.heads, K = c.conv_kernel;
  hybrid::A2ssmWeights w;
  w.conv2d_weight = random_uniform<4>({C, 1, K, K}, -0.3f, 0.3f, rng);
  w.conv2d_bias = random_uniform<1>({C}, -0.2f, 0.2f, rng);
  w.x_proj_weight = random_normal<2>({R + 2 * N, C}, 0.f, 1.f / std::sqrt(float(C)), rng);
  w.dt_projs_weight = random_uniform<2>({C, R}, -1.f / std::sqrt(float(R)), 1.f / std::sqrt(float(R)), rng);
  w.dt_projs_bias = random_uniform<1>({C}, -4.f, -1.f, rng);  // softplus -> dt ~ 0.02 .. 0.3
  w.A_logs = Tensor<float, 2>(C, N);
  for (Index ch = 0; ch < C; ++ch)
    for (Index n = 0; n < N; ++n) w.A_logs(ch, n) = std::log(float(n + 1)) + 0.1f * float((ch * 7 + n) % 5) / 5.f;
  w.Ds = random_normal<1>({C}, 1.f, 0.2f, rng);
  w.state_fusion_weight = random_normal<4>({nh, nh, 1, 1}, 0.f, 1.f / std::sqrt(float(nh)), rng);
  w.state_fusion_bias = random_normal<1>({nh}, 0.f, 0.1f, rng);
  return w;
}

// MASS: the released parameter shapes; BatchNorm statistics and the (tied) rpb random.
inline hybrid::MassWeights random_mass_weights(const hybrid::MassConfig& c, std::uint64_t seed) {
  Rng rng(seed);
  const Index C = c.channels, nh = c.heads, K = c.kernel_size;
  const float s = 1.f / std::sqrt(float(C));
  hybrid::MassWeights w;
  w.qkv_weight = random_normal<4>({3 * C, C, 1, 1}, 0.f, 1.5f * s, rng);
  w.qkv_bias = random_normal<1>({3 * C}, 0.f, 0.1f, rng);
  w.gate_0_weight = random_normal<4>({C, C, 1, 1}, 0.f, s, rng);
  w.gate_0_bias = random_normal<1>({C}, 0.f, 0.1f, rng);
  w.gate_1_weight = random_normal<1>({C}, 1.f, 0.2f, rng);
  w.gate_1_bias = random_normal<1>({C}, 0.f, 0.2f, rng);
  w.gate_1_running_mean = random_normal<1>({C}, 0.f, 0.2f, rng);
  w.gate_1_running_var = random_uniform<1>({C}, 0.5f, 2.f, rng);
  w.lepe_weight = random_uniform<4>({C, 1, 5, 5}, -0.2f, 0.2f, rng);
  w.lepe_bias = random_normal<1>({C}, 0.f, 0.1f, rng);
  w.norm_weight = random_normal<1>({C}, 1.f, 0.2f, rng);
  w.norm_bias = random_normal<1>({C}, 0.f, 0.1f, rng);
  w.proj_0_weight = random_normal<1>({C}, 1.f, 0.2f, rng);
  w.proj_0_bias = random_normal<1>({C}, 0.f, 0.1f, rng);
  w.proj_1_weight = random_normal<4>({C, C, 1, 1}, 0.f, s, rng);
  w.proj_1_bias = random_normal<1>({C}, 0.f, 0.1f, rng);
  if (c.use_rpb) {
    w.rpb = random_normal<3>({nh / 2, 2 * K - 1, 2 * K - 1}, 0.f, 0.5f, rng);
    if (c.global_mode) {
      const Index L0 = c.global_grid[0] * c.global_grid[1];
      w.global_rpb = random_normal<4>({1, nh, L0, L0}, 0.f, 0.5f, rng);
    }
  }
  if (!c.global_mode) w.ssm = random_a2ssm_weights(c.ssm_config(), seed + 1000);
  return w;
}

}  // namespace tokenmix::testing
