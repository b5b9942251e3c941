#pragma once
// blocks::linear: out = x·Wᵀ + b, PyTorch's nn.Linear / F.linear, with our own SIMD GEMM / GEMV.
//
//   blocks::PackedLinear w(weight);                           // weight [N, K], packed once
//   blocks::linear(x, w, bias, out);                          // x [M, K], bias [N] or nullopt, out [M, N]
//   Tensor<float, 2> y = blocks::linear(x, weight);           // packs on the fly (or GEMV for M <= 4)
//
// Shapes: weight is nn.Linear's [out_features N, in_features K], row-major, exactly as stored in a
// PyTorch state dict / safetensors file. x is [M, K]: flatten leading dims ([B, L, K] -> [B·L, K])
// into a ConstTensorView<float, 2> over the same buffer. M = 0 is valid (nothing to do).
// Equation and oracle: reference/linear.hpp. Kernels: blocks/linear_kernel.hpp.
//
// Paths: PackedLinear (weight repacked into 64-byte aligned panels once) is the fast path for
// repeated calls, prefill and decode alike. The unpacked overload packs the weight on the fly for
// M > 4 and runs a GEMV that streams W once (no packing) for M <= 4. The two paths round
// differently (within tolerance of the oracle); each is bitwise identical for any thread count.
// NaN or inf in x or W propagates to the outputs it touches (a NaN anywhere in a row of W reaches
// the whole column of out; in packed zero padding it never appears).
// The architecture is the one the including TU is compiled for (simd::default_arch).

#include <optional>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/blocks/linear_kernel.hpp"
#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"

namespace tokenmix::blocks {

// A weight [N, K] repacked for LinearKernel<Arch> (panels of `panel_width` output columns, see
// linear_kernel.hpp). Made once per weight; linear() checks that it was packed for its Arch.
class PackedLinear {
 public:
  PackedLinear() = default;
  // Packs `weight` [N, K] for simd::default_arch.
  explicit PackedLinear(const ConstTensorView<float, 2>& weight, const Eigen::ThreadPoolDevice* device = nullptr)
      : PackedLinear(pack<simd::default_arch>(weight, device)) {}

  template <class Arch = simd::default_arch>
  static PackedLinear pack(const ConstTensorView<float, 2>& weight, const Eigen::ThreadPoolDevice* device = nullptr);

  Index out_features() const { return out_features_; }  // N
  Index in_features() const { return in_features_; }    // K
  Index panel_width() const { return panel_width_; }    // NR of the kernel it was packed for
  const float* data() const { return data_.data(); }    // [ceil(N / NR), K, NR]
  std::size_t packed_floats() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

 private:
  Index out_features_ = 0, in_features_ = 0, panel_width_ = 0;
  std::vector<float, xsimd::aligned_allocator<float, 64>> data_;
};

namespace detail {

inline void check_linear_weight(const char* op, Index N, Index K, const Shape<2>& weight_shape) {
  tokenmix::detail::check_numel_fits(op, "weight", weight_shape);
  TOKENMIX_CHECK(N > 0 && K > 0, op, ": weight has shape ", weight_shape,
                 ", expected [N, K] (nn.Linear [out_features, in_features]) with N > 0 and K > 0");
}

// Validates x [M, K], the weight's extents (N, K_w), bias [N] and out [M, N]. Returns nothing; throws
// tokenmix::Error naming the argument.
inline void check_linear_args(const char* op, const ConstTensorView<float, 2>& x, Index N, Index K_w,
                              const Shape<2>& weight_shape, const float* weight_data,
                              const std::optional<ConstTensorView<float, 1>>& bias, const TensorView<float, 2>* out) {
  using tokenmix::detail::check_shape;
  check_linear_weight(op, N, K_w, weight_shape);
  tokenmix::detail::check_numel_fits(op, "x", shape_of(x));
  TOKENMIX_CHECK(x.dimension(1) == K_w, op, ": x has shape ", shape_of(x), ", expected [M, K=", K_w,
                 "] (K = in_features of weight ", weight_shape, ")");
  if (bias) check_shape(op, "bias", *bias, NamedShape<1>{{"N"}, {{N}}}, " (out_features of weight)");
  if (out) {
    check_shape(op, "out", *out, NamedShape<2>{{"M", "N"}, {{x.dimension(0), N}}});
    const Index n = out->size();
    auto overlaps = [&](const float* p, Index np) { return tokenmix::detail::ranges_overlap(out->data(), n, p, np); };
    TOKENMIX_CHECK(!overlaps(x.data(), x.size()) && !overlaps(weight_data, N * K_w) &&
                       !(bias && overlaps(bias->data(), bias->size())),
                   op, ": out must not overlap x, weight or bias");
  }
}

template <class Arch>
void run_packed_linear(const LinearProblem& problem, const float* packed, const Eigen::ThreadPoolDevice* device) {
  using Kernel = LinearKernel<Arch>;
  if (problem.M == 0) return;
  tokenmix::detail::parallel_for(device, Kernel::num_panels(problem.N), [&](Index first, Index last) {
    alignas(64) float pad[64];
    Kernel::gemm_panels(problem, packed, first, last, pad);
  });
}

}  // namespace detail

template <class Arch>
PackedLinear PackedLinear::pack(const ConstTensorView<float, 2>& weight, const Eigen::ThreadPoolDevice* device) {
  using Kernel = detail::LinearKernel<Arch>;
  const Index N = weight.dimension(0), K = weight.dimension(1);
  detail::check_linear_weight("PackedLinear", N, K, shape_of(weight));
  PackedLinear p;
  p.out_features_ = N, p.in_features_ = K, p.panel_width_ = Kernel::NR;
  p.data_.resize(static_cast<std::size_t>(Kernel::packed_floats(N, K)));
  float* dst = p.data_.data();
  tokenmix::detail::parallel_for(device, Kernel::num_panels(N), [&](Index first, Index last) {
    Kernel::pack_panels(weight.data(), N, K, first, last, dst);
  });
  return p;
}

// View-based core, prepacked weight: out [M, N] = x [M, K] · Wᵀ + bias.
template <class Arch = simd::default_arch>
void linear(const ConstTensorView<float, 2>& x,                   // [M, K]
            const PackedLinear& weight,                           // packed [N, K]
            const std::optional<ConstTensorView<float, 1>>& bias,  // [N] or nullopt
            TensorView<float, 2> out,                             // [M, N]
            const Eigen::ThreadPoolDevice* device = nullptr) {
  const char* op = "linear";
  TOKENMIX_CHECK(!weight.empty(), op, ": the PackedLinear weight is empty (default-constructed)");
  TOKENMIX_CHECK(weight.panel_width() == detail::LinearKernel<Arch>::NR, op, ": the PackedLinear weight was packed ",
                 "for panels of ", weight.panel_width(), " columns, but ", Arch::name(), " uses ",
                 detail::LinearKernel<Arch>::NR, " (pack it with PackedLinear::pack<Arch>)");
  const Index N = weight.out_features(), K = weight.in_features();
  detail::check_linear_args(op, x, N, K, Shape<2>{{N, K}}, weight.data(), bias, &out);
  const detail::LinearProblem problem{x.dimension(0), N, K, x.data(), bias ? bias->data() : nullptr, out.data()};
  detail::run_packed_linear<Arch>(problem, weight.data(), device);
}

// View-based core, weight [N, K] as stored by PyTorch: GEMV for M <= 4, else packs on the fly.
template <class Arch = simd::default_arch>
void linear(const ConstTensorView<float, 2>& x,                   // [M, K]
            const ConstTensorView<float, 2>& weight,              // [N, K]
            const std::optional<ConstTensorView<float, 1>>& bias,  // [N] or nullopt
            TensorView<float, 2> out,                             // [M, N]
            const Eigen::ThreadPoolDevice* device = nullptr) {
  const char* op = "linear";
  const Index N = weight.dimension(0), K = weight.dimension(1);
  detail::check_linear_args(op, x, N, K, shape_of(weight), weight.data(), bias, &out);
  const Index M = x.dimension(0);
  if (M == 0) return;
  const detail::LinearProblem problem{M, N, K, x.data(), bias ? bias->data() : nullptr, out.data()};
  using Kernel = detail::LinearKernel<Arch>;
  if (M <= detail::kLinearSmallM) {
    const Index groups = (N + Kernel::GEMV_R - 1) / Kernel::GEMV_R;
    tokenmix::detail::parallel_for(device, groups, [&](Index first, Index last) {
      alignas(64) float pad[64];
      Kernel::gemv_rows(problem, weight.data(), first * Kernel::GEMV_R, std::min(N, last * Kernel::GEMV_R), pad);
    });
    return;
  }
  const PackedLinear packed = PackedLinear::pack<Arch>(weight, device);
  detail::run_packed_linear<Arch>(problem, packed.data(), device);
}

// Convenience overloads: allocate and return out [M, N].
template <class Arch = simd::default_arch>
Tensor<float, 2> linear(const ConstTensorView<float, 2>& x, const PackedLinear& weight,
                        const std::optional<ConstTensorView<float, 1>>& bias = std::nullopt,
                        const Eigen::ThreadPoolDevice* device = nullptr) {
  TOKENMIX_CHECK(!weight.empty(), "linear: the PackedLinear weight is empty (default-constructed)");
  Tensor<float, 2> out(x.dimension(0), weight.out_features());
  blocks::linear<Arch>(x, weight, bias, TensorView<float, 2>(out.data(), out.dimensions()), device);
  return out;
}

template <class Arch = simd::default_arch>
Tensor<float, 2> linear(const ConstTensorView<float, 2>& x, const ConstTensorView<float, 2>& weight,
                        const std::optional<ConstTensorView<float, 1>>& bias = std::nullopt,
                        const Eigen::ThreadPoolDevice* device = nullptr) {
  detail::check_linear_args("linear", x, weight.dimension(0), weight.dimension(1), shape_of(weight), weight.data(),
                            bias, nullptr);
  Tensor<float, 2> out(x.dimension(0), weight.dimension(0));
  blocks::linear<Arch>(x, weight, bias, TensorView<float, 2>(out.data(), out.dimensions()), device);
  return out;
}

}  // namespace tokenmix::blocks
