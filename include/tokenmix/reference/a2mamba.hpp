#pragma once
// Oracle of blocks::A2MambaBlock: the released Block (spec a2mamba.md §4) as plain loops in Acc
// (double in tests), channels-last; the token mixer is its own oracle ref::mass.
//
// Source: LMMMEng/A2Mamba models/a2mamba.py Block.forward (no layerscale) and FFN.forward:
//   x = x + cpe1(x);  x = x + MASS(LN1(x));  x = x + cpe2(x);  x = x + fc2(t + dwconv(t)), t = GELU(fc1(LN2(x)))
// cpe*, dwconv: depthwise 3x3, padding 1, bias; LN eps 1e-6; GELU exact (erf).

#include <cmath>
#include <vector>

#include "tokenmix/blocks/a2mamba_types.hpp"
#include "tokenmix/reference/mass.hpp"

namespace tokenmix::ref {

template <class Acc = double>
Tensor<float, 4> a2mamba_block(const hybrid::MassConfig& mixer, Index ffn_dim, const blocks::A2MambaBlockWeights& w,
                               const ConstTensorView<float, 4>& input) {  // [B, H, W, C]
  const Index B = input.dimension(0), H = input.dimension(1), W = input.dimension(2), C = input.dimension(3);
  const Index rows = B * H * W, F = ffn_dim;
  auto at = [](Index r, Index c, Index n) { return static_cast<std::size_t>(r * n + c); };
  std::vector<Acc> x(input.data(), input.data() + input.size());
  // out += depthwise 3x3 (zero padding) of in [rows, ch] with weight [ch, 3, 3] and bias.
  auto depthwise = [&](const std::vector<Acc>& in, Index ch, const Tensor<float, 3>& k, const Tensor<float, 1>& bias,
                       std::vector<Acc>& out) {
    for (Index r = 0; r < rows; ++r) {
      const Index b = r / (H * W), i = r / W % H, j = r % W;
      for (Index c = 0; c < ch; ++c) {
        Acc acc = Acc(bias(c));
        for (Index p = 0; p < 3; ++p)
          for (Index q = 0; q < 3; ++q) {
            const Index y = i + p - 1, z = j + q - 1;
            if (y >= 0 && y < H && z >= 0 && z < W) acc += Acc(k(c, p, q)) * in[at((b * H + y) * W + z, c, ch)];
          }
        out[at(r, c, ch)] += acc;
      }
    }
  };
  auto layer_norm = [&](const Tensor<float, 1>& g, const Tensor<float, 1>& beta) {
    std::vector<Acc> n = x;
    detail::layer_norm_rows(n, C, g, beta, blocks::kA2MambaLayerNormEps);
    return n;
  };
  const std::vector<Acc> before_cpe1 = x;
  depthwise(before_cpe1, C, w.cpe1_weight, w.cpe1_bias, x);
  std::vector<float> normed(std::size_t(rows * C));
  {
    const std::vector<Acc> n = layer_norm(w.norm1_weight, w.norm1_bias);
    for (std::size_t i = 0; i < n.size(); ++i) normed[i] = static_cast<float>(n[i]);  // MASS takes a float map
  }
  const Tensor<float, 4> mixed = ref::mass<Acc>(mixer, w.token_mixer, ConstTensorView<float, 4>(normed.data(), B, H, W, C));
  for (Index i = 0; i < rows * C; ++i) x[std::size_t(i)] += Acc(mixed.data()[i]);
  const std::vector<Acc> before_cpe2 = x;
  depthwise(before_cpe2, C, w.cpe2_weight, w.cpe2_bias, x);
  const std::vector<Acc> n2 = layer_norm(w.norm2_weight, w.norm2_bias);
  std::vector<Acc> t(std::size_t(rows * F));
  for (Index r = 0; r < rows; ++r)
    for (Index f = 0; f < F; ++f) {
      Acc acc = Acc(w.fc1_bias(f));
      for (Index c = 0; c < C; ++c) acc += Acc(w.fc1_weight(f, c)) * n2[at(r, c, C)];
      t[at(r, f, F)] = acc * (Acc(1) + std::erf(acc / std::sqrt(Acc(2)))) / Acc(2);
    }
  std::vector<Acc> u = t;
  depthwise(t, F, w.dwconv_weight, w.dwconv_bias, u);  // u = t + dwconv(t)
  Tensor<float, 4> out(B, H, W, C);
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < C; ++c) {
      Acc acc = Acc(w.fc2_bias(c));
      for (Index f = 0; f < F; ++f) acc += Acc(w.fc2_weight(c, f)) * u[at(r, f, F)];
      out.data()[r * C + c] = static_cast<float>(x[at(r, c, C)] + acc);
    }
  return out;
}

}  // namespace tokenmix::ref
