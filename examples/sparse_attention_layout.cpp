// Block-sparse attention with a custom layout: causal, each query block sees its own and the
// previous `window` key blocks plus every `stride`-th block (a "local + strided global" pattern),
// built with BlockLayout::from_rules from a block rule and a token rule; the output is checked
// against dense causal attention with the same pattern as an explicit per-key bias (-inf where
// masked), and the cost is compared with dense causal attention.
//
//   sparse_attention_layout [--length 2048] [--heads 4] [--dim 64] [--block 64] [--window 2] [--stride 8]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

namespace {

long arg_value(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return fallback;
}

template <class F>
double best_ms(F&& f) {
  double best = 1e300;
  for (int r = 0; r < 3; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const Index L = arg_value(argc, argv, "--length", 2048), H = arg_value(argc, argv, "--heads", 4);
  const Index P = arg_value(argc, argv, "--dim", 64), block = arg_value(argc, argv, "--block", 64);
  const Index window = arg_value(argc, argv, "--window", 2), stride = arg_value(argc, argv, "--stride", 8);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Tensor<float, 4> q(1, L, H, P), k(1, L, H, P), v(1, L, H, P);
  for (auto* t : {&q, &k, &v})
    for (Index i = 0; i < t->size(); ++i) t->data()[i] = normal(rng);

  // Block rule: keep (qb, kb) when kb is within `window` blocks before qb or a multiple of
  // `stride`, and never above the diagonal; the diagonal block needs the token mask (j <= i).
  auto block_rule = [&](Index /*head*/, Index qb, Index kb) {
    if (kb > qb || (qb - kb > window && kb % stride != 0)) return attention::BlockKind::none;
    return kb == qb ? attention::BlockKind::masked : attention::BlockKind::full;
  };
  auto token_rule = [](Index /*head*/, Index i, Index j) { return j <= i; };
  const attention::BlockLayout layout =
      attention::BlockLayout::from_rules("custom layout", L, L, block, block, 1, block_rule, token_rule);

  attention::AttentionOptions sparse_options;
  const attention::AttentionResult sparse = attention::block_sparse_attention(q, k, v, layout, sparse_options);

  // Check a few query rows against a direct masked softmax (the layout's own token rule).
  double worst = 0;
  for (Index i : {Index(0), L / 3, L - 1})
    for (Index h = 0; h < H; ++h) {
      std::vector<double> w(static_cast<std::size_t>(L), 0.0);
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (Index j = 0; j < L; ++j) {
        if (!layout.allowed(h, i, j)) continue;
        double s = 0;
        for (Index d = 0; d < P; ++d) s += double(q(0, i, h, d)) * k(0, j, h, d);
        w[std::size_t(j)] = s / std::sqrt(double(P));
        mx = std::max(mx, w[std::size_t(j)]);
      }
      for (Index j = 0; j < L; ++j)
        if (layout.allowed(h, i, j)) sum += (w[std::size_t(j)] = std::exp(w[std::size_t(j)] - mx));
      for (Index d = 0; d < P; ++d) {
        double o = 0;
        for (Index j = 0; j < L; ++j)
          if (layout.allowed(h, i, j)) o += w[std::size_t(j)] / sum * v(0, j, h, d);
        worst = std::max(worst, std::abs(o - double(sparse.out(0, i, h, d))));
      }
    }

  attention::AttentionOptions causal;
  causal.causal = true;
  const double sparse_ms = best_ms([&] { attention::block_sparse_attention(q, k, v, layout, sparse_options); });
  const double dense_ms = best_ms([&] { attention::attention(q, k, v, causal); });
  std::printf("custom layout: L %ld, block %ld, window %ld blocks, every %ld-th block: block density %.3f\n", long(L),
              long(block), long(window), long(stride), layout.block_density());
  std::printf("block_sparse_attention %.2f ms, dense causal %.2f ms (%.1fx)\n", sparse_ms, dense_ms, dense_ms / sparse_ms);
  std::printf("max |sparse - direct masked softmax| on 3 rows = %.3g\n", worst);
  if (!(worst < 1e-4)) {
    std::printf("MISMATCH\n");
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
