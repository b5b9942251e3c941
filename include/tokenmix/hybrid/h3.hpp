#pragma once
// hybrid::H3Layer: the H3 layer (Fu, Dao et al., "Hungry Hungry Hippos", 2023) composed from the
// library's public operators: blocks::linear (q, k, v and output projections), ssm::causal_conv1d
// (the shift SSM, a causal FIR of width N), ssm::diagonal_ssm (the S4D-Lin diagonal SSM, bilinear,
// run as a recurrence instead of H3's FFT convolution), and two elementwise passes (the K·V outer
// product per head and the Q contraction). Parallel form (prefill, optionally continuing from a
// decode state) and the one-token recurrent step.
//
//   hybrid::H3Layer h3(config, weights);           // packs the projections, discretises the SSMs once
//   Tensor<float, 3> y = h3.forward(u);            // u, y [B, L, D]
//   H3State state = make_h3_state(config, B);
//   h3.forward(prompt, out, &state);               // prefill, state after the prompt
//   h3.step(u_t, state, y_t);                      // u_t, y_t [B, D]
//
// Math, weights (H3's state dict names) and the state: hybrid/h3_types.hpp; oracle: reference/h3.hpp.
// The layer keeps its intermediate buffers ([B·L, D]-sized, reused across calls: fresh ones would
// page-fault on every call), so one H3Layer must not run two calls at once; the ops inside run on
// `device`'s threads, and every result is bitwise identical for any thread count.

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/hybrid/h3_types.hpp"
#include "tokenmix/ssm/causal_conv1d.hpp"
#include "tokenmix/ssm/diagonal_ssm.hpp"

namespace tokenmix::hybrid {

class H3Layer {
 public:
  H3Layer(const H3Config& config, const H3Weights& w, const Eigen::ThreadPoolDevice* device = nullptr)
      : config_(config), device_(device) {
    detail::check_h3_weights("H3Layer", config, w);
    const Index D = config.d_model, N = config.d_state, Hh = config.heads(), M = config.modes();
    q_proj_ = blocks::PackedLinear(w.q_proj_weight, device);
    k_proj_ = blocks::PackedLinear(w.k_proj_weight, device);
    v_proj_ = blocks::PackedLinear(w.v_proj_weight, device);
    out_proj_ = blocks::PackedLinear(w.output_linear_weight, device);
    q_bias_ = w.q_proj_bias, k_bias_ = w.k_proj_bias, v_bias_ = w.v_proj_bias, out_bias_ = w.output_linear_bias;
    // Shift SSM kernel Ks[c, j] = sum_n B[c, n]·C[c, n + j] (SSKernelShift: irfft(conj(rfft B)·rfft C)),
    // as a conv1d weight: tap N-1-j multiplies the input j tokens back.
    shift_weight_ = Tensor<float, 2>(D, N);
    for (Index c = 0; c < D; ++c)
      for (Index j = 0; j < N; ++j) {
        double acc = 0;
        for (Index n = 0; n + j < N; ++n) acc += double(w.ssm_k_kernel_B(c, n)) * double(w.ssm_k_kernel_C(c, n + j));
        shift_weight_(c, N - 1 - j) = static_cast<float>(acc);
      }
    shift_skip_ = w.ssm_k_D;
    // Diagonal SSM: A = -exp(inv_A_real) + i·A_imag (real_type 'exp'), dt = exp(log_dt), bilinear.
    Tensor<float, 3> A(Hh, M, 2);
    Tensor<float, 1> dt(Hh);
    for (Index h = 0; h < Hh; ++h) {
      dt(h) = static_cast<float>(std::exp(double(w.kernel_log_dt(h))));
      for (Index m = 0; m < M; ++m) {
        A(h, m, 0) = static_cast<float>(-std::exp(double(w.kernel_inv_A_real(h, m))));
        A(h, m, 1) = w.kernel_A_imag(h, m);
      }
    }
    ssm::DiagonalSsmParams p = ssm::s4d_discretize(A, w.kernel_B, w.kernel_C, dt, ssm::S4dDiscretization::bilinear);
    dA_ = std::move(p.dA), C_ = std::move(p.C);
    skip_ = w.D;
  }

  const H3Config& config() const { return config_; }

  // out [B, L, D] = H3(u [B, L, D]). With a state: starts from it and leaves the state after the
  // last token in it (state carried across calls); without: starts from zeros.
  void forward(const ConstTensorView<float, 3>& u, TensorView<float, 3> out, H3State* state = nullptr) {
    detail::check_h3_input("H3Layer::forward", config_, u, &out, state);
    const Index B = u.dimension(0), L = u.dimension(1), D = config_.d_model, KV = config_.kv_channels();
    const Index rows = B * L;
    Buffers buf = buffers(rows);
    const ConstTensorView<float, 2> u2(u.data(), rows, D);
    project(u2, buf);
    // k' = shift_ssm(k) + ssm_k_D·k
    ssm::CausalConv1dOptions conv;
    conv.device = device_;
    std::optional<TensorView<float, 3>> shift_final;
    if (state) {
      conv.initial_state.emplace(state->shift_state.data(), state->shift_state.dimensions());
      shift_final.emplace(state->shift_state.data(), state->shift_state.dimensions());
    }
    ssm::causal_conv1d(ConstTensorView<float, 3>(buf.k, B, L, D), shift_weight_, conv,
                       TensorView<float, 3>(buf.shifted, B, L, D), shift_final ? &*shift_final : nullptr);
    kv_products(rows, buf);
    // y = diagonal_ssm(kv) + D·kv
    ssm::DiagonalSsmOptions diag;
    diag.D = skip_;
    diag.device = device_;
    std::optional<TensorView<float, 4>> diag_final;
    if (state) {
      diag.initial_state.emplace(state->diagonal_state.data(), state->diagonal_state.dimensions());
      diag_final.emplace(state->diagonal_state.data(), state->diagonal_state.dimensions());
    }
    ssm::diagonal_ssm(ConstTensorView<float, 3>(buf.kv, B, L, KV), dA_, C_, diag, TensorView<float, 3>(buf.y, B, L, KV),
                      diag_final ? &*diag_final : nullptr);
    contract_q(rows, buf);
    blocks::linear(ConstTensorView<float, 2>(buf.o, rows, D), out_proj_, optional_view(out_bias_),
                   TensorView<float, 2>(out.data(), rows, D), device_);
  }

  Tensor<float, 3> forward(const ConstTensorView<float, 3>& u, H3State* state = nullptr) {
    detail::check_h3_input("H3Layer::forward", config_, u, nullptr, state);  // before allocating
    Tensor<float, 3> out(u.dimension(0), u.dimension(1), config_.d_model);
    forward(u, TensorView<float, 3>(out.data(), out.dimensions()), state);
    return out;
  }

  // One token per sequence: out [B, D] = H3(u [B, D]) after the tokens the state has seen; the
  // state advances by one token.
  void step(const ConstTensorView<float, 2>& u, H3State& state, TensorView<float, 2> out) {
    const char* op = "H3Layer::step";
    const Index B = u.dimension(0), D = config_.d_model, KV = config_.kv_channels();
    tokenmix::detail::check_numel_fits(op, "u", shape_of(u));
    TOKENMIX_CHECK(B > 0 && u.dimension(1) == D, op, ": u has shape ", shape_of(u), ", expected [B, D=", D,
                   "] with B > 0");
    detail::check_h3_input(op, config_, ConstTensorView<float, 3>(u.data(), B, 1, D), nullptr, &state);
    tokenmix::detail::check_shape(op, "out", out, NamedShape<2>{{"B", "D"}, {{B, D}}}, " like u");
    TOKENMIX_CHECK(!tokenmix::detail::ranges_overlap(out.data(), out.size(), u.data(), u.size()), op,
                   ": out must not overlap u");
    Buffers buf = buffers(B);
    project(u, buf);
    ssm::CausalConv1dOptions conv;
    conv.device = device_;
    ssm::causal_conv1d_update(ConstTensorView<float, 2>(buf.k, B, D),
                              TensorView<float, 3>(state.shift_state.data(), state.shift_state.dimensions()),
                              shift_weight_, conv, TensorView<float, 2>(buf.shifted, B, D));
    kv_products(B, buf);
    ssm::DiagonalSsmOptions diag;
    diag.D = skip_;
    diag.device = device_;
    ssm::diagonal_ssm_step(ConstTensorView<float, 2>(buf.kv, B, KV),
                           TensorView<float, 4>(state.diagonal_state.data(), state.diagonal_state.dimensions()), dA_,
                           C_, diag, TensorView<float, 2>(buf.y, B, KV));
    contract_q(B, buf);
    blocks::linear(ConstTensorView<float, 2>(buf.o, B, D), out_proj_, optional_view(out_bias_), out, device_);
  }

 private:

  // Row-major intermediates of `rows` tokens.
  struct Buffers {
    float *q, *k, *v, *shifted;  // [rows, D]   (shifted: the shift SSM's output, then k')
    float *kv, *y;               // [rows, Hh·hd²]
    float* o;                    // [rows, D]   the Q contraction
  };
  Buffers buffers(Index rows) {
    const Index D = config_.d_model, KV = config_.kv_channels();
    const std::size_t need = static_cast<std::size_t>(rows * (5 * D + 2 * KV));
    if (workspace_.size() < need) workspace_.resize(need);
    float* p = workspace_.data();
    Buffers b;
    for (float** slot : {&b.q, &b.k, &b.v, &b.shifted, &b.o}) *slot = p, p += rows * D;
    for (float** slot : {&b.kv, &b.y}) *slot = p, p += rows * KV;
    return b;
  }

  void project(const ConstTensorView<float, 2>& u, const Buffers& buf) {
    const Index rows = u.dimension(0), D = config_.d_model;
    blocks::linear(u, q_proj_, optional_view(q_bias_), TensorView<float, 2>(buf.q, rows, D), device_);
    blocks::linear(u, k_proj_, optional_view(k_bias_), TensorView<float, 2>(buf.k, rows, D), device_);
    blocks::linear(u, v_proj_, optional_view(v_bias_), TensorView<float, 2>(buf.v, rows, D), device_);
  }

  // k' = shifted + ssm_k_D·k (in place in buf.shifted); kv[(h·hd + i)·hd + j] = k'[h·hd + i]·v[h·hd + j].
  void kv_products(Index rows, const Buffers& buf) const {
    const Index D = config_.d_model, hd = config_.head_dim, KV = config_.kv_channels();
    const float* skip = shift_skip_.data();
    tokenmix::detail::parallel_for(device_, rows, [&](Index first, Index last) {
      for (Index r = first; r < last; ++r) {
        float* kr = buf.shifted + r * D;
        const float *k = buf.k + r * D, *v = buf.v + r * D;
        float* kv = buf.kv + r * KV;
        for (Index c = 0; c < D; ++c) kr[c] += skip[c] * k[c];
        if (hd == 1) {
          for (Index c = 0; c < D; ++c) kv[c] = kr[c] * v[c];
        } else {
          for (Index c = 0; c < D; ++c)  // c = h·hd + i
            for (Index j = 0; j < hd; ++j) kv[c * hd + j] = kr[c] * v[c / hd * hd + j];
        }
      }
    });
  }

  // o[j·Hh + h] = sum_i q[h·hd + i]·y[(h·hd + i)·hd + j].
  void contract_q(Index rows, const Buffers& buf) const {
    const Index D = config_.d_model, hd = config_.head_dim, Hh = config_.heads(), KV = config_.kv_channels();
    tokenmix::detail::parallel_for(device_, rows, [&](Index first, Index last) {
      for (Index r = first; r < last; ++r) {
        const float *q = buf.q + r * D, *y = buf.y + r * KV;
        float* o = buf.o + r * D;
        if (hd == 1) {
          for (Index c = 0; c < D; ++c) o[c] = q[c] * y[c];
          continue;
        }
        for (Index h = 0; h < Hh; ++h)
          for (Index j = 0; j < hd; ++j) {
            float acc = 0.0f;
            for (Index i = 0; i < hd; ++i) acc += q[h * hd + i] * y[(h * hd + i) * hd + j];
            o[j * Hh + h] = acc;
          }
      }
    });
  }

  H3Config config_;
  const Eigen::ThreadPoolDevice* device_;
  blocks::PackedLinear q_proj_, k_proj_, v_proj_, out_proj_;
  Tensor<float, 1> q_bias_, k_bias_, v_bias_, out_bias_;  // [D]
  Tensor<float, 2> shift_weight_;                         // [D, N] conv1d layout
  Tensor<float, 1> shift_skip_;                           // [D] ssm_k_D
  Tensor<float, 3> dA_, C_;                               // [Hh, M, 2] discretised diagonal SSM
  Tensor<float, 1> skip_;                                 // [Hh] D
  std::vector<float, xsimd::aligned_allocator<float, 64>> workspace_;
};

// One call: H3Layer(config, weights, device).forward(u), from zero state (the layer packs the
// projections and discretises the SSMs on every call: keep an H3Layer for repeated use).
inline Tensor<float, 3> h3(const H3Config& config, const H3Weights& weights, const ConstTensorView<float, 3>& u,
                           const Eigen::ThreadPoolDevice* device = nullptr) {
  return H3Layer(config, weights, device).forward(u);
}

}  // namespace tokenmix::hybrid
