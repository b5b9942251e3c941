#pragma once
// Arguments of the depthwise 2-D convolution (blocks/depthwise_conv2d.hpp), shared with its oracle
// (reference/depthwise_conv2d.hpp) so that both accept and reject exactly the same inputs.
//
// PyTorch's nn.Conv2d(C, C, K, padding=K // 2, groups=C) on channels-last images, stride 1, odd K
// ('same' output size, zero padding), optional bias and SiLU (A2Mamba's DWConv 3x3 / 5x5: the
// conditional position encodings, the FFN, A2SSM's input conv and MASS's LePE):
//   x, out   [B, H, W, C]
//   weight   [C, K, K]   (the PyTorch weight [C, 1, K, K] squeezed)
//   bias     [C]
//   out[b, i, j, c] = silu?(bias[c] + sum_{u, v < K} weight[c, u, v]·x[b, i + u - K/2, j + v - K/2, c])
//   (x outside the image reads 0)

#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::blocks {

struct DepthwiseConv2dOptions {
  std::optional<ConstTensorView<float, 1>> bias;  // [C]
  bool activation_silu = false;                   // out = silu(conv + bias)
  // Threads over (batch, row) items; bitwise identical results for any thread count.
  const Eigen::ThreadPoolDevice* device = nullptr;
};

namespace detail {

struct DepthwiseConv2dShape {
  Index batch, height, width, channels, kernel_size;
};

inline DepthwiseConv2dShape check_depthwise_conv2d_args(const char* op, const ConstTensorView<float, 4>& x,
                                                        const ConstTensorView<float, 3>& weight,
                                                        const DepthwiseConv2dOptions& o,
                                                        const TensorView<float, 4>* out) {
  using tokenmix::detail::check_shape;
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  const Index B = x.dimension(0), H = x.dimension(1), W = x.dimension(2), C = x.dimension(3);
  TOKENMIX_CHECK(B > 0 && C > 0, op, ": x has shape ", shape_of(x), ", expected [B, H, W, C] with B, C > 0");
  const Index K = weight.dimension(1);
  TOKENMIX_CHECK(weight.dimension(0) == C && K > 0 && K % 2 == 1 && weight.dimension(2) == K, op,
                 ": weight has shape ", shape_of(weight), ", expected [C=", C,
                 ", K, K] with an odd kernel size K (padding K/2 keeps the image size)");
  if (o.bias) check_shape(op, "bias", *o.bias, NamedShape<1>{{"C"}, {{C}}});
  if (out) {
    check_shape(op, "out", *out, NamedShape<4>{{"B", "H", "W", "C"}, {{B, H, W, C}}}, " like x");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out->data(), out->size(), x.data(), x.size()), op,
                   ": out must not overlap x");
  }
  return {B, H, W, C, K};
}

}  // namespace detail
}  // namespace tokenmix::blocks
