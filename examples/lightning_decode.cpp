// Lightning Attention (TransNormerLLM's decayed linear attention) as a language model uses it:
// prefill a prompt with the chunked op (returning its final state [B, H, K, V]), then decode token
// by token with lightning_attention_step, the state carried in place. The decoded outputs are
// checked against one chunked call over prompt + generated tokens (the same sequence).
//
//   lightning_decode [--prompt 1000] [--steps 64] [--heads 8] [--dim 64]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

namespace {

long arg_value(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const Index prompt = arg_value(argc, argv, "--prompt", 1000), steps = arg_value(argc, argv, "--steps", 64);
  const Index H = arg_value(argc, argv, "--heads", 8), Kd = arg_value(argc, argv, "--dim", 64), L = prompt + steps;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  // q, k, v for the whole sequence [1, L, H, K] (a model would compute the decode tokens' q, k, v
  // from its own outputs; random ones show the mechanics).
  Tensor<float, 4> q(1, L, H, Kd), k(1, L, H, Kd), v(1, L, H, Kd);
  for (auto* t : {&q, &k, &v})
    for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);
  const std::vector<float> slopes = linear::tnl_slopes(H, /*layer=*/0, /*num_layers=*/12);  // per-head decay
  linear::LightningOptions options;
  options.slopes.emplace(slopes.data(), H);

  // Prefill: the first `prompt` tokens, chunked, returning the state.
  auto first = [&](const Tensor<float, 4>& t) {
    return ConstTensorView<float, 4>(t.data(), 1, prompt, H, Kd);
  };
  auto start = std::chrono::steady_clock::now();
  linear::LinearResult prefill = linear::lightning_attention(first(q), first(k), first(v), options);
  const double prefill_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  // Decode: one token at a time, the state [1, H, K, V] updated in place.
  linear::LightningStepOptions step_options;
  step_options.slopes = options.slopes;
  TensorView<float, 4> state(prefill.final_state.data(), prefill.final_state.dimensions());
  Tensor<float, 3> decoded(steps, H, Kd);
  start = std::chrono::steady_clock::now();
  for (Index s = 0; s < steps; ++s) {
    const Index t = prompt + s;
    auto token = [&](const Tensor<float, 4>& x) { return ConstTensorView<float, 3>(x.data() + t * H * Kd, 1, H, Kd); };
    const Tensor<float, 3> o = linear::lightning_attention_step(state, token(q), token(k), token(v), step_options);
    std::copy_n(o.data(), H * Kd, decoded.data() + s * H * Kd);
  }
  const double decode_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / double(steps);

  // The same sequence in one chunked call: its last `steps` rows must be the decoded ones.
  const linear::LinearResult whole = linear::lightning_attention(q, k, v, options);
  double worst = 0, scale = 0;
  for (Index s = 0; s < steps; ++s)
    for (Index i = 0; i < H * Kd; ++i) {
      const float want = whole.out.data()[(prompt + s) * H * Kd + i];
      worst = std::max(worst, double(std::abs(decoded.data()[s * H * Kd + i] - want)));
      scale = std::max(scale, double(std::abs(want)));
    }
  std::printf("lightning attention, H %ld, K = V %ld: prefill of %ld tokens %.2f ms, decode %.1f us per token\n",
              long(H), long(Kd), long(prompt), prefill_ms, decode_us);
  std::printf("max |decoded - one chunked call| over %ld steps = %.3g (outputs up to %.3g)\n", long(steps), worst, scale);
  if (!(worst <= 1e-4 * std::max(1.0, scale))) {
    std::printf("MISMATCH\n");
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
