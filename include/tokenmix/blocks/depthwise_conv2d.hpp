#pragma once
// blocks::depthwise_conv2d: PyTorch's nn.Conv2d(C, C, K, padding=K // 2, groups=C) on channels-last
// images [B, H, W, C], odd K, stride 1, optional bias and SiLU, vectorized over channels: the
// depthwise convolutions of A2Mamba (3x3 position encodings and FFN, 5x5 A2SSM input conv and LePE).
//
//   blocks::DepthwiseConv2dOptions o;  o.bias = b;  o.activation_silu = true;
//   Tensor<float, 4> y = blocks::depthwise_conv2d(x, weight, o);   // x [B, H, W, C], weight [C, K, K]
//
// Semantics and shapes: blocks/depthwise_conv2d_types.hpp; oracle: reference/depthwise_conv2d.hpp;
// kernel: blocks/depthwise_conv2d_kernel.hpp. NaN in x reaches the K x K outputs around it.

#include <vector>

#include "tokenmix/blocks/depthwise_conv2d_kernel.hpp"
#include "tokenmix/blocks/depthwise_conv2d_types.hpp"
#include "tokenmix/core/threading.hpp"

namespace tokenmix::blocks {

// View-based core: writes out [B, H, W, C]; out must not overlap x.
template <class Arch = simd::default_arch>
void depthwise_conv2d(const ConstTensorView<float, 4>& x,       // [B, H, W, C]
                      const ConstTensorView<float, 3>& weight,  // [C, K, K]
                      const DepthwiseConv2dOptions& options,
                      TensorView<float, 4> out) {               // [B, H, W, C]
  const detail::DepthwiseConv2dShape s = detail::check_depthwise_conv2d_args("depthwise_conv2d", x, weight, options, &out);
  const Index C = s.channels, K = s.kernel_size;
  std::vector<float> wt(static_cast<std::size_t>(K * K * C));  // [K, K, C]: taps as channel vectors
  for (Index c = 0; c < C; ++c)
    for (Index t = 0; t < K * K; ++t) wt[static_cast<std::size_t>(t * C + c)] = weight.data()[c * K * K + t];
  const detail::DepthwiseConv2dProblem problem{s.batch, s.height, s.width, C, K, x.data(), wt.data(),
                                               options.bias ? options.bias->data() : nullptr, options.activation_silu,
                                               out.data()};
  using Kernel = detail::DepthwiseConv2dKernel<Arch>;
  tokenmix::detail::parallel_for(options.device, Kernel::num_items(problem),
                                 [&](Index first, Index last) { Kernel::run_items(problem, first, last); });
}

// Convenience overload: allocates out [B, H, W, C].
template <class Arch = simd::default_arch>
Tensor<float, 4> depthwise_conv2d(const ConstTensorView<float, 4>& x, const ConstTensorView<float, 3>& weight,
                                  const DepthwiseConv2dOptions& options = {}) {
  detail::check_depthwise_conv2d_args("depthwise_conv2d", x, weight, options, nullptr);  // before allocating
  Tensor<float, 4> out(x.dimension(0), x.dimension(1), x.dimension(2), x.dimension(3));
  blocks::depthwise_conv2d<Arch>(x, weight, options, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::blocks
