#pragma once
// Oracles of the 2-D scan family (ssm/selective_scan_2d.hpp), each written from its paper's / released
// code's description (spec vision_ssm.md §1-§7) with the index maps as explicit formulas: no
// ScanPath, no fast op. The 1-D scan inside is ref::selective_scan (accumulation in Acc).
// Arguments and validation: ssm/selective_scan_2d_types.hpp.

#include <cmath>
#include <functional>
#include <vector>

#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan_2d_types.hpp"

namespace tokenmix::ref {

namespace detail {

// One direction as the papers describe it: the sequence visits cells seq[t] (-1 = zero padding),
// reading u channels [u0, u0+Dk) and, at cell param_seq[t], delta channels [d0, +Dk) and B/C group g
// (+ Θ[moves[t]] when theta); parameters rows [p0, +Dk); outputs added at seq[t], channels [o0, +Dk).
template <class Acc>
void scan_and_add(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                  const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                  const ConstTensorView<float, 5>& Cm, const ssm::SelectiveScan2dOptions& o,
                  const std::vector<Index>& seq, const std::vector<Index>& param_seq, const std::vector<int>& moves,
                  Index Dk, Index u0, Index d0, Index p0, Index o0, Index g, Tensor<float, 4>& out) {
  const Index Bt = u.dimension(0), W = u.dimension(2), N = A.dimension(1), T = static_cast<Index>(seq.size());
  Tensor<float, 3> us(Bt, T, Dk), ds(Bt, T, Dk);
  Tensor<float, 3> bs(Bt, T, N), cs(Bt, T, N);
  us.setZero(), ds.setZero(), bs.setZero(), cs.setZero();
  for (Index b = 0; b < Bt; ++b)
    for (Index t = 0; t < T; ++t) {
      const Index p = seq[t], q = param_seq[t];
      for (Index c = 0; c < Dk; ++c) {
        if (p >= 0) us(b, t, c) = u(b, p / W, p % W, u0 + c);
        if (q >= 0) ds(b, t, c) = delta(b, q / W, q % W, d0 + c);
      }
      for (Index n = 0; n < N; ++n) {
        if (q >= 0) bs(b, t, n) = Bm(b, q / W, q % W, g, n), cs(b, t, n) = Cm(b, q / W, q % W, g, n);
        if (o.B_offset) bs(b, t, n) += (*o.B_offset)(moves[t], n);
      }
    }
  Tensor<float, 2> Ak(Dk, N);
  Tensor<float, 1> Dv(Dk), bias(Dk);
  for (Index c = 0; c < Dk; ++c) {
    for (Index n = 0; n < N; ++n) Ak(c, n) = A(p0 + c, n);
    if (o.D) Dv(c) = (*o.D)(p0 + c);
    if (o.delta_bias) bias(c) = (*o.delta_bias)(p0 + c);
  }
  ssm::SelectiveScanOptions so;
  if (o.D) so.D = ConstTensorView<float, 1>(Dv);
  if (o.delta_bias) so.delta_bias = ConstTensorView<float, 1>(bias);
  so.delta_softplus = o.delta_softplus;
  const ssm::SelectiveScanResult r = ref::selective_scan<Acc>(us, ds, Ak, bs, cs, so);
  for (Index b = 0; b < Bt; ++b)
    for (Index t = 0; t < T; ++t)
      if (seq[t] >= 0)
        for (Index c = 0; c < Dk; ++c) out(b, seq[t] / W, seq[t] % W, o0 + c) += r.out(b, t, c);
}

// PlainMamba's direction label of the move a → b on a W-wide grid (0: start or not a unit move).
inline int move_label(Index a, Index b, Index W) {
  if (a < 0 || b < 0) return 0;
  if (a / W == b / W && b == a + 1) return 1;   // right
  if (a / W == b / W && b == a - 1) return 2;   // left
  if (b == a - W) return 3;                     // up
  if (b == a + W) return 4;                     // down
  return 0;
}

inline std::vector<int> moves_of(const std::vector<Index>& seq, Index W) {
  std::vector<int> m(seq.size(), 0);
  for (std::size_t t = 1; t < seq.size(); ++t) m[t] = move_label(seq[t - 1], seq[t], W);
  return m;
}

inline std::vector<Index> reversed(std::vector<Index> v) { return {v.rbegin(), v.rend()}; }

inline std::vector<Index> row_major_seq(Index H, Index W) {
  std::vector<Index> s;
  for (Index t = 0; t < H * W; ++t) s.push_back(t);
  return s;
}
inline std::vector<Index> col_major_seq(Index H, Index W) {  // CM[t] = (t mod H)·W + ⌊t/H⌋
  std::vector<Index> s;
  for (Index t = 0; t < H * W; ++t) s.push_back((t % H) * W + t / H);
  return s;
}

template <class Acc>
void apply_merge(Tensor<float, 4>& out, const ssm::SelectiveScan2dOptions& o) {
  for (Index i = 0; i < out.size(); ++i) {
    Acc v = Acc(out.data()[i]) * Acc(o.merge_scale);
    if (o.z) {
      const Acc z = o.z->data()[i];
      v *= z / (Acc(1) + std::exp(-z));
    }
    out.data()[i] = static_cast<float>(v);
  }
}

// VMamba's four orders written out: RM, CM, rev RM, rev CM.
inline std::vector<std::vector<Index>> cross_seqs(Index H, Index W) {
  return {row_major_seq(H, W), col_major_seq(H, W), reversed(row_major_seq(H, W)), reversed(col_major_seq(H, W))};
}

// Validates the arguments with the fast engine's rules for `k_blocks` parameter blocks of Dk
// channels (u / out channels shared when !split_channels, split per block otherwise) and returns
// the zeroed out [B, H, W, Do]. The paths play no part in validation: any path of H×W does.
inline Tensor<float, 4> checked_zero_output(const char* op, const ConstTensorView<float, 4>& u,
                                            const ConstTensorView<float, 4>& delta, const ConstTensorView<float, 2>& A,
                                            const ConstTensorView<float, 5>& Bm, const ConstTensorView<float, 5>& Cm,
                                            const ssm::SelectiveScan2dOptions& o, Index k_blocks, Index Dk,
                                            bool split_channels, Index Do) {
  const Index H = u.dimension(1), W = u.dimension(2);
  std::vector<ssm::ScanDirection> dirs;
  for (Index k = 0; k < k_blocks; ++k) {
    const Index io = split_channels ? k * Dk : 0;
    dirs.push_back(ssm::ScanDirection{ssm::scan_path(ssm::ScanOrder::row_major, H, W), Dk, io, k * Dk, k * Dk, io,
                                      k_blocks > 1 ? k : 0});
  }
  ssm::detail::check_selective_scan_2d_args(op, u, delta, A, Bm, Cm, dirs, o, Do, nullptr);
  Tensor<float, 4> out(u.dimension(0), H, W, Do);
  out.setZero();
  return out;
}

}  // namespace detail

// VMamba SS2D: for k in 0..3, π = [RM, CM, rev RM, rev CM][k]; y[:, π] += S6_k(x[:, π]); plain sum.
template <class Acc = double>
Tensor<float, 4> cross_scan_2d(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                               const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                               const ConstTensorView<float, 5>& Cm, const ssm::SelectiveScan2dOptions& o = {}) {
  const Index H = u.dimension(1), W = u.dimension(2), D = u.dimension(3);
  Tensor<float, 4> out = detail::checked_zero_output("ref::cross_scan_2d", u, delta, A, Bm, Cm, o, 4, D, false, D);
  const std::vector<std::vector<Index>> seqs = detail::cross_seqs(H, W);
  for (Index k = 0; k < 4; ++k) {
    const auto& s = seqs[static_cast<std::size_t>(k)];
    detail::scan_and_add<Acc>(u, delta, A, Bm, Cm, o, s, s, detail::moves_of(s, W), D, 0, k * D, k * D, 0, k, out);
  }
  detail::apply_merge<Acc>(out, o);
  return out;
}

// EfficientVMamba ES2D: pad to even Hp×Wp with zeros; sub-grid k: (2a, 2b) RM, (2a+1, 2b) CM,
// (2a, 2b+1) RM, (2a+1, 2b+1) CM; each scanned once with parameter block k; scatter; crop.
template <class Acc = double>
Tensor<float, 4> atrous_scan_2d(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                                const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                                const ConstTensorView<float, 5>& Cm, const ssm::SelectiveScan2dOptions& o = {}) {
  const Index H = u.dimension(1), W = u.dimension(2), D = u.dimension(3);
  Tensor<float, 4> out = detail::checked_zero_output("ref::atrous_scan_2d", u, delta, A, Bm, Cm, o, 4, D, false, D);
  const Index h = (H + 1) / 2, w = (W + 1) / 2;  // the padded grid is 2h × 2w
  const int di[4] = {0, 1, 0, 1}, dj[4] = {0, 0, 1, 1};
  const bool col[4] = {false, true, false, true};
  for (int k = 0; k < 4; ++k) {
    std::vector<Index> s;
    auto push = [&](Index a, Index b) {
      const Index i = 2 * a + di[k], j = 2 * b + dj[k];
      s.push_back(i < H && j < W ? i * W + j : -1);  // the zero padding of the released code
    };
    if (col[k]) {
      for (Index b = 0; b < w; ++b)
        for (Index a = 0; a < h; ++a) push(a, b);
    } else {
      for (Index a = 0; a < h; ++a)
        for (Index b = 0; b < w; ++b) push(a, b);
    }
    detail::scan_and_add<Acc>(u, delta, A, Bm, Cm, o, s, s, detail::moves_of(s, W), D, 0, k * D, k * D, 0, k, out);
  }
  detail::apply_merge<Acc>(out, o);
  return out;
}

// PlainMamba: π₁ row snake, π₂ = rev π₁, π₃ column snake, π₄ = rev π₃; shared parameters; B at step
// t gets Θ[dir_t]; permute_params = false: u at π[t], delta / B / C of raster token t.
template <class Acc = double>
Tensor<float, 4> snake_scan_2d(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                               const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                               const ConstTensorView<float, 5>& Cm, const ssm::SelectiveScan2dOptions& o = {}) {
  const Index H = u.dimension(1), W = u.dimension(2), D = u.dimension(3);
  Tensor<float, 4> out = detail::checked_zero_output("ref::snake_scan_2d", u, delta, A, Bm, Cm, o, 1, D, false, D);
  std::vector<Index> row_snake, col_snake;
  for (Index i = 0; i < H; ++i)
    for (Index jj = 0; jj < W; ++jj) row_snake.push_back(i * W + (i % 2 == 0 ? jj : W - 1 - jj));
  for (Index j = 0; j < W; ++j)
    for (Index ii = 0; ii < H; ++ii) col_snake.push_back((j % 2 == 0 ? ii : H - 1 - ii) * W + j);
  const std::vector<Index> raster = detail::row_major_seq(H, W);
  for (const auto& s : {row_snake, detail::reversed(row_snake), col_snake, detail::reversed(col_snake)})
    detail::scan_and_add<Acc>(u, delta, A, Bm, Cm, o, s, o.permute_params ? s : raster, detail::moves_of(s, W), D, 0,
                              0, 0, 0, 0, out);
  detail::apply_merge<Acc>(out, o);
  return out;
}

// GroupMamba: channel group k (of D/4) scanned in [RM, CM, rev RM, rev CM][k] with its own
// parameters and B/C group k; outputs concatenated.
template <class Acc = double>
Tensor<float, 4> group_scan_2d(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                               const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                               const ConstTensorView<float, 5>& Cm, const ssm::SelectiveScan2dOptions& o = {}) {
  const Index H = u.dimension(1), W = u.dimension(2), D = u.dimension(3);
  TOKENMIX_CHECK(D % 4 == 0 && D > 0, "ref::group_scan_2d: u has shape ", shape_of(u),
                 ", expected [B, H, W, D] with D divisible by 4 (four channel groups)");
  const Index Dg = D / 4;
  Tensor<float, 4> out = detail::checked_zero_output("ref::group_scan_2d", u, delta, A, Bm, Cm, o, 4, Dg, true, D);
  const std::vector<std::vector<Index>> seqs = detail::cross_seqs(H, W);
  for (Index k = 0; k < 4; ++k) {
    const auto& s = seqs[static_cast<std::size_t>(k)];
    detail::scan_and_add<Acc>(u, delta, A, Bm, Cm, o, s, s, detail::moves_of(s, W), Dg, k * Dg, k * Dg, k * Dg, k * Dg,
                              k, out);
  }
  detail::apply_merge<Acc>(out, o);
  return out;
}

// Vim: y_f = S6(u_f, θ_f); y_b = flip(S6(flip u_b, θ_b)); v2: out = (y_f + y_b)/2 ⊙ silu(z) with
// separate parameters; v1: out = (y_f + y_b) ⊙ silu(z), only A separate. Shapes: ssm::bidirectional_scan.
template <class Acc = double>
Tensor<float, 3> bidirectional_scan(const ConstTensorView<float, 3>& u, const ConstTensorView<float, 3>& delta,
                                    const ConstTensorView<float, 2>& A, const ConstTensorView<float, 4>& Bm,
                                    const ConstTensorView<float, 4>& Cm, ssm::VimVariant variant,
                                    const std::optional<ConstTensorView<float, 3>>& z = std::nullopt,
                                    const ssm::SelectiveScan2dOptions& o = {}) {
  const bool v2 = variant == ssm::VimVariant::v2;
  const Index Bt = u.dimension(0), L = u.dimension(1), D = v2 ? u.dimension(2) / 2 : u.dimension(2), N = A.dimension(1);
  TOKENMIX_CHECK(L > 0 && D > 0 && (!v2 || u.dimension(2) % 2 == 0) && A.dimension(0) == 2 * D,
                 "ref::bidirectional_scan: u ", shape_of(u), " and A ", shape_of(A), " do not fit variant ",
                 v2 ? "v2" : "v1");
  auto direction = [&](bool backward) {  // S6 of one direction in its own scan order, returned in token order
    const Index uc = v2 && backward ? D : 0, pc = backward ? D : 0, g = v2 && backward ? 1 : 0;
    const Index pd = v2 ? pc : 0;  // v1 shares D and delta_bias
    Tensor<float, 3> us(Bt, L, D), ds(Bt, L, D), bs(Bt, L, N), cs(Bt, L, N);
    for (Index b = 0; b < Bt; ++b)
      for (Index t = 0; t < L; ++t) {
        const Index src = backward ? L - 1 - t : t;  // flip
        for (Index c = 0; c < D; ++c) us(b, t, c) = u(b, src, uc + c), ds(b, t, c) = delta(b, src, uc + c);
        for (Index n = 0; n < N; ++n) bs(b, t, n) = Bm(b, src, g, n), cs(b, t, n) = Cm(b, src, g, n);
      }
    Tensor<float, 2> Ak = A.slice(std::array<Index, 2>{pc, 0}, std::array<Index, 2>{D, N});
    Tensor<float, 1> Dv(D), bias(D);
    ssm::SelectiveScanOptions so;
    if (o.D) Dv = o.D->slice(std::array<Index, 1>{pd}, std::array<Index, 1>{D}), so.D = ConstTensorView<float, 1>(Dv);
    if (o.delta_bias)
      bias = o.delta_bias->slice(std::array<Index, 1>{pd}, std::array<Index, 1>{D}),
      so.delta_bias = ConstTensorView<float, 1>(bias);
    so.delta_softplus = o.delta_softplus;
    const Tensor<float, 3> y = ref::selective_scan<Acc>(us, ds, Ak, bs, cs, so).out;
    Tensor<float, 3> in_order(Bt, L, D);
    for (Index b = 0; b < Bt; ++b)
      for (Index t = 0; t < L; ++t)
        for (Index c = 0; c < D; ++c) in_order(b, backward ? L - 1 - t : t, c) = y(b, t, c);
    return in_order;
  };
  const Tensor<float, 3> yf = direction(false), yb = direction(true);
  Tensor<float, 3> out(Bt, L, D);
  for (Index i = 0; i < out.size(); ++i) {
    Acc v = (Acc(yf.data()[i]) + Acc(yb.data()[i])) * (v2 ? Acc(0.5) : Acc(1));
    if (z) {
      const Acc zz = z->data()[i];
      v *= zz / (Acc(1) + std::exp(-zz));
    }
    out.data()[i] = static_cast<float>(v);
  }
  return out;
}

// PyTorch's bilinear interpolation, align_corners = False, written from its definition.
template <class Acc = double>
Tensor<float, 4> bilinear_resize(const ConstTensorView<float, 4>& x, Index H, Index W) {
  const Index Bt = x.dimension(0), h = x.dimension(1), w = x.dimension(2), D = x.dimension(3);
  Tensor<float, 4> out(Bt, H, W, D);
  auto src = [](Index dst, Index in, Index outn) {
    const Acc s = (Acc(dst) + Acc(0.5)) * Acc(in) / Acc(outn) - Acc(0.5);
    return s < 0 ? Acc(0) : s;
  };
  for (Index b = 0; b < Bt; ++b)
    for (Index i = 0; i < H; ++i)
      for (Index j = 0; j < W; ++j) {
        const Acc si = src(i, h, H), sj = src(j, w, W);
        const Index i0 = std::min<Index>(Index(si), h - 1), j0 = std::min<Index>(Index(sj), w - 1);
        const Index i1 = std::min(i0 + 1, h - 1), j1 = std::min(j0 + 1, w - 1);
        const Acc fi = si - Acc(i0), fj = sj - Acc(j0);
        for (Index c = 0; c < D; ++c)
          out(b, i, j, c) = static_cast<float>((1 - fi) * ((1 - fj) * x(b, i0, j0, c) + fj * x(b, i0, j1, c)) +
                                               fi * ((1 - fj) * x(b, i1, j0, c) + fj * x(b, i1, j1, c)));
      }
  return out;
}

// MSVMamba: y = S6_group1(RM(full)) + up(Σ_thirds S6_group0([rev RM, CM, rev CM](low))).
template <class Acc = double>
Tensor<float, 4> multiscale_scan_2d(const ConstTensorView<float, 4>& u_full, const ConstTensorView<float, 4>& delta_full,
                                    const ConstTensorView<float, 5>& B_full, const ConstTensorView<float, 5>& C_full,
                                    const ConstTensorView<float, 4>& u_low, const ConstTensorView<float, 4>& delta_low,
                                    const ConstTensorView<float, 5>& B_low, const ConstTensorView<float, 5>& C_low,
                                    const ConstTensorView<float, 2>& A, const ssm::SelectiveScan2dOptions& o = {}) {
  const Index H = u_full.dimension(1), W = u_full.dimension(2), D = u_full.dimension(3);
  const Index h = u_low.dimension(1), w = u_low.dimension(2);
  ssm::SelectiveScan2dOptions branch = o;
  branch.z.reset();
  branch.merge_scale = 1.0f;
  Tensor<float, 4> y(u_full.dimension(0), H, W, D), y_low(u_low.dimension(0), h, w, D);
  y.setZero(), y_low.setZero();
  const std::vector<Index> full = detail::row_major_seq(H, W);
  detail::scan_and_add<Acc>(u_full, delta_full, A, B_full, C_full, branch, full, full, detail::moves_of(full, W), D, 0, 0,
                            D, 0, 0, y);
  std::vector<Index> joined = detail::reversed(detail::row_major_seq(h, w));
  for (const auto& part : {detail::col_major_seq(h, w), detail::reversed(detail::col_major_seq(h, w))})
    joined.insert(joined.end(), part.begin(), part.end());
  detail::scan_and_add<Acc>(u_low, delta_low, A, B_low, C_low, branch, joined, joined, detail::moves_of(joined, w), D,
                            0, 0, 0, 0, 0, y_low);
  y += ref::bilinear_resize<Acc>(y_low, H, W);
  detail::apply_merge<Acc>(y, o);
  return y;
}

}  // namespace tokenmix::ref
