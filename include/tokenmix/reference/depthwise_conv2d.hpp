#pragma once
// Oracle of the depthwise 2-D convolution: plain loops over the definition, accumulation in Acc
// (double in tests). Semantics and shapes: blocks/depthwise_conv2d_types.hpp.
//
// Source: PyTorch nn.Conv2d(C, C, K, padding=K // 2, groups=C) (a cross-correlation), as A2Mamba's
// released models/a2mamba.py uses it (cpe, FFN, A2SSM's conv2d, MASS's lepe):
//   out[b, i, j, c] = silu?(bias[c] + sum_{u, v < K} weight[c, u, v]·x[b, i + u - K/2, j + v - K/2, c])

#include <cmath>

#include "tokenmix/blocks/depthwise_conv2d_types.hpp"

namespace tokenmix::ref {

template <class Acc = double>
void depthwise_conv2d(const ConstTensorView<float, 4>& x,       // [B, H, W, C]
                      const ConstTensorView<float, 3>& weight,  // [C, K, K]
                      const blocks::DepthwiseConv2dOptions& options,
                      TensorView<float, 4> out) {               // [B, H, W, C]
  const blocks::detail::DepthwiseConv2dShape s =
      blocks::detail::check_depthwise_conv2d_args("ref::depthwise_conv2d", x, weight, options, &out);
  const Index half = s.kernel_size / 2;
  for (Index b = 0; b < s.batch; ++b)
    for (Index i = 0; i < s.height; ++i)
      for (Index j = 0; j < s.width; ++j)
        for (Index c = 0; c < s.channels; ++c) {
          Acc acc = options.bias ? Acc((*options.bias)(c)) : Acc(0);
          for (Index u = 0; u < s.kernel_size; ++u)
            for (Index v = 0; v < s.kernel_size; ++v) {
              const Index y = i + u - half, z = j + v - half;
              if (y >= 0 && y < s.height && z >= 0 && z < s.width) acc += Acc(weight(c, u, v)) * Acc(x(b, y, z, c));
            }
          if (options.activation_silu) acc = acc / (Acc(1) + std::exp(-acc));
          out(b, i, j, c) = static_cast<float>(acc);
        }
}

template <class Acc = double>
Tensor<float, 4> depthwise_conv2d(const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& weight,
                                  const blocks::DepthwiseConv2dOptions& options = {}) {
  blocks::detail::check_depthwise_conv2d_args("ref::depthwise_conv2d", x, weight, options, nullptr);
  Tensor<float, 4> out(x.dimension(0), x.dimension(1), x.dimension(2), x.dimension(3));
  ref::depthwise_conv2d<Acc>(x, weight, options, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ref
