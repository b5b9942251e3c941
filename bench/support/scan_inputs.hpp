#pragma once
// Mamba-1 scan inputs and counters shared by the selective-scan family's benchmarks
// (bench/ssm/selective_scan_bench.cpp, local_bidirectional_scan_bench.cpp).

#include <benchmark/benchmark.h>

#include <random>

#include "support/counters.hpp"
#include "support/limits.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::bench {

// A Mamba-1 layer's scan inputs (mamba-130m: D = 1536, N = 16), in the ranges Mamba produces.
struct ScanInputs {
  Tensor<float, 3> u, delta, z;  // [B, L, D]
  Tensor<float, 2> A;            // [D, N]
  Tensor<float, 4> B, C;         // [B, L, 1, N]
  Tensor<float, 1> D, bias;      // [D]

  ScanInputs(Index batch, Index length, Index channels, Index state)
      : u(batch, length, channels), delta(batch, length, channels), z(batch, length, channels),
        A(channels, state), B(batch, length, 1, state), C(batch, length, 1, state), D(channels), bias(channels) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* t : {&u, &delta, &z})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (auto* t : {&B, &C})
      for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
    for (Index d = 0; d < channels; ++d) {
      for (Index n = 0; n < state; ++n) A(d, n) = -float(n + 1);  // A = -exp(A_log) at Mamba's init
      D(d) = 1.f;
      bias(d) = -4.f;  // softplus(-4 + delta) ~ 0.02, inside Mamba's dt init range
    }
  }
  ssm::SelectiveScanOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::SelectiveScanOptions o;
    o.D = D, o.z = z, o.delta_bias = bias, o.delta_softplus = true, o.device = device;
    return o;
  }
};

// Rates (items = B·L·D token-channels, ~7·N flops each, u/delta/z/out + B/C bytes, plus the states
// when written) and the exp bounds (N decays + softplus and gate per token-channel), for `passes`
// scans over the inputs.
inline void set_scan_counters(benchmark::State& state, Index batch, Index length, Index channels, Index n_state,
                              double passes = 1.0, bool with_states = false) {
  const double token_channels = double(batch) * double(length) * double(channels);
  const double bytes = token_channels * 4 * sizeof(float) + double(batch * length) * 2 * n_state * sizeof(float) +
                       (with_states ? token_channels * double(n_state) * sizeof(float) : 0.0);
  set_rates(state, token_channels, passes * 7.0 * token_channels * double(n_state), passes * bytes);
  const auto& limits = machine_limits();
  const double decays = passes * token_channels * double(n_state), activations = passes * 2 * token_channels;
  set_bound_fraction(state, "exp_bound", (decays + activations) * limits.exp_ns_per_element * 1e-9);
  set_bound_fraction(state, "exp2_bound",
                     (decays * limits.exp2_ns_per_element + activations * limits.exp_ns_per_element) * 1e-9);
}

}  // namespace tokenmix::bench
