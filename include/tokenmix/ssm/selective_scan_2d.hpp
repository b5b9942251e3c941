#pragma once
// 2-D (and bidirectional 1-D) selective scans: one gather → selective_scan → scatter-add engine
// over scan paths (scan_path.hpp), and the layouts of the vision SSMs as thin wrappers that only
// choose the directions (spec vision_ssm.md; arguments in selective_scan_2d_types.hpp):
//
//   selective_scan_2d(u, delta, A, B, C, directions, options, out)   the engine, any directions
//   cross_scan_2d      VMamba SS2D: RM, CM, rev RM, rev CM; K = 4 parameter groups; merge = sum
//   snake_scan_2d      PlainMamba: 4 snake orders sharing parameters, Θ offsets on B by move,
//                      permute_params = false reproduces the released code (only u is reordered)
//   atrous_scan_2d     EfficientVMamba ES2D: 4 stride-2 sub-grids (odd H / W padded with zeros)
//   group_scan_2d      GroupMamba: 4 channel groups, each scanned in one of RM, CM, rev RM, rev CM
//   multiscale_scan_2d MSVMamba: RM at full resolution + one joined [rev RM, CM, rev CM] scan at
//                      half resolution, summed per cell, bilinearly upsampled, added
//   bidirectional_scan Vim v1 / v2 over sequences [B, L, D]
//
// Each direction gathers its inputs along its path into a contiguous sequence, runs the fast 1-D
// selective_scan (so every option and every speed-up of the scan applies), and adds its outputs
// back at the cells it visited. Paths are shared immutable values (scan_path caches them).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan_2d_types.hpp"

namespace tokenmix::ssm {

namespace detail {

using AlignedFloats = std::vector<float, xsimd::aligned_allocator<float, 64>>;

// Sequence buffers of one direction: us, ds, ys [B, T, Dk]; bs, cs [B, T, N].
struct DirectionBuffers {
  AlignedFloats us, ds, ys, bs, cs;
};

// Gathers direction `d`'s inputs into contiguous sequences (zeros at padding cells).
inline void gather_direction(const SelectiveScan2dShape& s, const float* u, const float* delta, const float* Bm,
                             const float* Cm, const ScanDirection& d, const SelectiveScan2dOptions& o,
                             DirectionBuffers& buf) {
  const ScanPath& path = *d.path;
  const Index T = path.length(), Dk = d.channels, N = s.state, HW = s.height * s.width;
  const float* theta = o.B_offset ? o.B_offset->data() : nullptr;  // [5, N]
  tokenmix::detail::parallel_for(o.device, s.batch * T, [&](Index first, Index last) {
    for (Index bt = first; bt < last; ++bt) {
      const Index b = bt / T, t = bt % T;
      const Index cell = path.index[static_cast<std::size_t>(t)];
      const Index param_cell = o.permute_params ? cell : t;  // PlainMamba's released code: raster order
      float* us = buf.us.data() + bt * Dk;
      float* ds = buf.ds.data() + bt * Dk;
      float* bs = buf.bs.data() + bt * N;
      float* cs = buf.cs.data() + bt * N;
      if (cell >= 0)
        std::memcpy(us, u + ((b * HW + cell) * s.u_channels + d.u_channel), sizeof(float) * static_cast<std::size_t>(Dk));
      else
        std::fill(us, us + Dk, 0.0f);
      if (param_cell >= 0) {
        std::memcpy(ds, delta + ((b * HW + param_cell) * s.delta_channels + d.delta_channel),
                    sizeof(float) * static_cast<std::size_t>(Dk));
        const Index bc = ((b * HW + param_cell) * s.groups + d.group) * N;
        std::memcpy(bs, Bm + bc, sizeof(float) * static_cast<std::size_t>(N));
        std::memcpy(cs, Cm + bc, sizeof(float) * static_cast<std::size_t>(N));
      } else {  // padding: the projections of a zero input (raw delta 0, B = C = 0)
        std::fill(ds, ds + Dk, 0.0f);
        std::fill(bs, bs + N, 0.0f);
        std::fill(cs, cs + N, 0.0f);
      }
      if (theta) {
        const float* row = theta + path.moves[static_cast<std::size_t>(t)] * N;
        for (Index n = 0; n < N; ++n) bs[n] += row[n];
      }
    }
  });
}

// out[b, cell, out_channel + c] += ys[b, t, c] for every step t at a grid cell. Steps that revisit
// a cell (joined paths) add in step order; threads split the batch, so the sum order is fixed.
inline void scatter_add_direction(const SelectiveScan2dShape& s, const ScanDirection& d, const DirectionBuffers& buf,
                                  float* out, const Eigen::ThreadPoolDevice* device) {
  const ScanPath& path = *d.path;
  const Index T = path.length(), Dk = d.channels, HW = s.height * s.width;
  const bool revisits = !path.is_bijection() && path.length() > HW;  // a cell may appear twice
  auto add_steps = [&](Index b, Index t0, Index t1) {
    for (Index t = t0; t < t1; ++t) {
      const Index cell = path.index[static_cast<std::size_t>(t)];
      if (cell < 0) continue;
      float* dst = out + (b * HW + cell) * s.out_channels + d.out_channel;
      const float* src = buf.ys.data() + (b * T + t) * Dk;
      for (Index c = 0; c < Dk; ++c) dst[c] += src[c];
    }
  };
  if (revisits) {  // split by batch only: two threads never add to one cell
    tokenmix::detail::parallel_for(device, s.batch, [&](Index b0, Index b1) {
      for (Index b = b0; b < b1; ++b) add_steps(b, 0, T);
    });
  } else {
    tokenmix::detail::parallel_for(device, s.batch * T, [&](Index first, Index last) {
      for (Index bt = first; bt < last;) {
        const Index b = bt / T, t = bt % T, t_end = std::min(T, t + (last - bt));
        add_steps(b, t, t_end);
        bt += t_end - t;
      }
    });
  }
}

// out = merge_scale · out, then out *= silu(z).
template <class Arch>
void finish_merge(float* out, Index n, const SelectiveScan2dOptions& o) {
  if (o.merge_scale != 1.0f)
    for (Index i = 0; i < n; ++i) out[i] *= o.merge_scale;
  if (!o.z) return;
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const float* z = o.z->data();
  tokenmix::detail::parallel_for(o.device, (n + W - 1) / W, [&](Index first, Index last) {
    alignas(64) float pad[64];
    for (Index v = first; v < last; ++v) {
      const Index i = v * W, count = std::min(W, n - i);
      const V g = simd::silu<Arch>(simd::load_upto<Arch>(z + i, count, pad));
      simd::store_upto<Arch>(out + i, simd::load_upto<Arch>(out + i, count, pad) * g, count, pad);
    }
  });
}

}  // namespace detail

// The engine: out [B, H, W, Do] = merge over `directions` of selective scans along their paths.
template <class Arch = simd::default_arch>
void selective_scan_2d(const ConstTensorView<float, 4>& u,       // [B, H, W, Du]
                       const ConstTensorView<float, 4>& delta,   // [B, H, W, Dd]
                       const ConstTensorView<float, 2>& A,       // [Dp, N]
                       const ConstTensorView<float, 5>& Bm,      // [B, H, W, G, N]
                       const ConstTensorView<float, 5>& Cm,      // [B, H, W, G, N]
                       const std::vector<ScanDirection>& directions, const SelectiveScan2dOptions& options,
                       TensorView<float, 4> out) {               // [B, H, W, Do]
  const SelectiveScan2dShape s = detail::check_selective_scan_2d_args(
      "selective_scan_2d", u, delta, A, Bm, Cm, directions, options, out.dimension(3), &out);
  out.setZero();
  if (s.batch == 0) return;
  // Reused across calls on this thread: fresh multi-MB buffers per call would page-fault on every
  // call (~15 µs per 4 KiB page in this VM, more than the scan itself at 56×56×192). They hold the
  // largest direction seen so far: B·T·(3·Dk + 2·N) floats.
  thread_local detail::DirectionBuffers buf;
  for (const ScanDirection& d : directions) {
    const Index T = d.path->length(), Dk = d.channels, N = s.state;
    const auto seq = static_cast<std::size_t>(s.batch * T * Dk);
    buf.us.resize(seq), buf.ds.resize(seq), buf.ys.resize(seq);
    buf.bs.resize(static_cast<std::size_t>(s.batch * T * N)), buf.cs.resize(static_cast<std::size_t>(s.batch * T * N));
    detail::gather_direction(s, u.data(), delta.data(), Bm.data(), Cm.data(), d, options, buf);
    SelectiveScanOptions so;
    if (options.D) so.D = ConstTensorView<float, 1>(options.D->data() + d.param_channel, Dk);
    if (options.delta_bias) so.delta_bias = ConstTensorView<float, 1>(options.delta_bias->data() + d.param_channel, Dk);
    so.delta_softplus = options.delta_softplus;
    so.device = options.device;
    TensorView<float, 3> ys(buf.ys.data(), s.batch, T, Dk);
    ssm::selective_scan<Arch>(ConstTensorView<float, 3>(buf.us.data(), s.batch, T, Dk),
                              ConstTensorView<float, 3>(buf.ds.data(), s.batch, T, Dk),
                              ConstTensorView<float, 2>(A.data() + d.param_channel * N, Dk, N),
                              ConstTensorView<float, 3>(buf.bs.data(), s.batch, T, N),
                              ConstTensorView<float, 3>(buf.cs.data(), s.batch, T, N), so, ys, nullptr);
    detail::scatter_add_direction(s, d, buf, out.data(), options.device);
  }
  detail::finish_merge<Arch>(out.data(), out.size(), options);
}

// Convenience: allocates out [B, H, W, out_channels].
template <class Arch = simd::default_arch>
Tensor<float, 4> selective_scan_2d(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                                   const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                                   const ConstTensorView<float, 5>& Cm, const std::vector<ScanDirection>& directions,
                                   const SelectiveScan2dOptions& options, Index out_channels) {
  detail::check_selective_scan_2d_args("selective_scan_2d", u, delta, A, Bm, Cm, directions, options, out_channels,
                                       nullptr);
  Tensor<float, 4> out(u.dimension(0), u.dimension(1), u.dimension(2), out_channels);
  ssm::selective_scan_2d<Arch>(u, delta, A, Bm, Cm, directions, options,
                               TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

// ---- the layouts of the vision SSMs --------------------------------------------------------------

// The four directions of VMamba's CrossScan, in its order k = 0..3: RM, CM, rev RM, rev CM.
inline std::vector<ScanOrder> cross_scan_orders() {
  return {ScanOrder::row_major, ScanOrder::col_major, ScanOrder::row_major_reversed, ScanOrder::col_major_reversed};
}

// Directions: `orders[k]` over channels [0, D) of u and out, with parameter block k (delta channels
// and A/D/delta_bias rows [k·D, (k+1)·D)) and B/C group k. VMamba's layout (its K·d_inner channels).
inline std::vector<ScanDirection> grouped_directions(const std::vector<ScanOrder>& orders, Index H, Index W, Index D) {
  std::vector<ScanDirection> dirs;
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const Index block = static_cast<Index>(k) * D;
    dirs.push_back(ScanDirection{scan_path(orders[k], H, W), D, 0, block, block, 0, static_cast<Index>(k)});
  }
  return dirs;
}

// The directions of each vision layout over an H×W image with D channels (what the wrappers below
// pass to selective_scan_2d; use them directly to write into your own `out`).
//
// VMamba SS2D (CrossScan → 4 × S6 → CrossMerge, a plain sum):
//   u [B, H, W, D]; delta [B, H, W, 4·D] (direction k's dt in channels [kD, (k+1)D), computed from
//   the same cells, so it can be projected in grid order); A [4·D, N]; B, C [B, H, W, 4, N];
//   D, delta_bias [4·D]; out [B, H, W, D].
inline std::vector<ScanDirection> cross_scan_directions(Index H, Index W, Index D) {
  return grouped_directions(cross_scan_orders(), H, W, D);
}

// EfficientVMamba ES2D: the four stride-2 sub-grids (ScanOrder::atrous0..3), each scanned once with
// its own parameter block; the merge writes each cell once. Odd H or W are padded (bottom / right)
// with zero inputs, as the released code pads x before its projections. Shapes as cross scan.
inline std::vector<ScanDirection> atrous_directions(Index H, Index W, Index D) {
  return grouped_directions({ScanOrder::atrous0, ScanOrder::atrous1, ScanOrder::atrous2, ScanOrder::atrous3}, H, W, D);
}

// PlainMamba: the four continuous snake orders (row snake, its reverse, column snake, its reverse)
// with ONE set of parameters shared by all: delta [B, H, W, D], A [D, N], B, C [B, H, W, 1, N],
// D, delta_bias [D]. options.B_offset (Θ, [5, N]) adds the direction-aware offset;
// options.permute_params = false reproduces the released checkpoints (only u is reordered).
// out = Σ_k y_k (4 D-terms), then the gate.
inline std::vector<ScanDirection> snake_directions(Index H, Index W, Index D) {
  std::vector<ScanDirection> dirs;
  for (const ScanOrder o : {ScanOrder::row_snake, ScanOrder::row_snake_reversed, ScanOrder::col_snake,
                            ScanOrder::col_snake_reversed})
    dirs.push_back(ScanDirection{scan_path(o, H, W), D, 0, 0, 0, 0, 0});
  return dirs;
}

// GroupMamba: channels split into 4 groups of D/4, group k scanned in direction k of
// cross_scan_orders() with its own parameters (rows of A, D, delta_bias) and B/C group k:
// u, delta [B, H, W, D]; A [D, N]; B, C [B, H, W, 4, N]; out [B, H, W, D]. D must be divisible by 4.
inline std::vector<ScanDirection> group_directions(Index H, Index W, Index D) {
  TOKENMIX_CHECK(D % 4 == 0 && D > 0, "group_scan_2d: u has ", D,
                 " channels, expected [B, H, W, D] with D divisible by 4 (four channel groups)");
  const Index Dg = D / 4;
  const std::vector<ScanOrder> orders = cross_scan_orders();
  std::vector<ScanDirection> dirs;
  for (Index k = 0; k < 4; ++k)
    dirs.push_back(ScanDirection{scan_path(orders[static_cast<std::size_t>(k)], H, W), Dg, k * Dg, k * Dg, k * Dg,
                                 k * Dg, k});
  return dirs;
}

// The wrappers: view-based (out [B, H, W, D]) and allocating.
#define TOKENMIX_SCAN_2D_LAYOUT(name, directions)                                                                   \
  template <class Arch = simd::default_arch>                                                                        \
  void name(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,                             \
            const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,                                \
            const ConstTensorView<float, 5>& Cm, const SelectiveScan2dOptions& options, TensorView<float, 4> out) { \
    selective_scan_2d<Arch>(u, delta, A, Bm, Cm, directions(u.dimension(1), u.dimension(2), u.dimension(3)),        \
                            options, out);                                                                          \
  }                                                                                                                 \
  template <class Arch = simd::default_arch>                                                                        \
  Tensor<float, 4> name(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,                 \
                        const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,                    \
                        const ConstTensorView<float, 5>& Cm, const SelectiveScan2dOptions& options = {}) {          \
    return selective_scan_2d<Arch>(u, delta, A, Bm, Cm, directions(u.dimension(1), u.dimension(2), u.dimension(3)), \
                                   options, u.dimension(3));                                                        \
  }

TOKENMIX_SCAN_2D_LAYOUT(cross_scan_2d, cross_scan_directions)
TOKENMIX_SCAN_2D_LAYOUT(atrous_scan_2d, atrous_directions)
TOKENMIX_SCAN_2D_LAYOUT(snake_scan_2d, snake_directions)
TOKENMIX_SCAN_2D_LAYOUT(group_scan_2d, group_directions)
#undef TOKENMIX_SCAN_2D_LAYOUT

// Vision Mamba (Vim) bidirectional scan over sequences, as a 1 × L grid (forward = RM, backward =
// rev RM). Every input is in the original token order.
//   v2 (bimamba_type "v2", all released Vim models): separate backward conv, x_proj, dt_proj, A, D:
//      u, delta [B, L, 2·D] (forward ‖ backward channels; the backward conv output in original
//      order, i.e. flip(conv_b(flip x))), A [2·D, N], B, C [B, L, 2, N], D, delta_bias [2·D];
//      out = (y_f + y_b) / 2 ⊙ silu(z)  (if_divide_out).
//   v1 (legacy): only A is separate: u, delta [B, L, D], A [2·D, N], B, C [B, L, 1, N],
//      D, delta_bias [D] shared; out = (y_f + y_b) ⊙ silu(z), no /2.

template <class Arch = simd::default_arch>
Tensor<float, 3> bidirectional_scan(const ConstTensorView<float, 3>& u, const ConstTensorView<float, 3>& delta,
                                    const ConstTensorView<float, 2>& A, const ConstTensorView<float, 4>& Bm,
                                    const ConstTensorView<float, 4>& Cm, VimVariant variant,
                                    const std::optional<ConstTensorView<float, 3>>& z = std::nullopt,
                                    SelectiveScan2dOptions options = {}) {
  const char* op = "bidirectional_scan";
  const Index Bt = u.dimension(0), L = u.dimension(1);
  const Index D = variant == VimVariant::v2 ? u.dimension(2) / 2 : u.dimension(2);
  TOKENMIX_CHECK(L > 0 && D > 0 && (variant == VimVariant::v1 || u.dimension(2) % 2 == 0), op, ": u has shape ",
                 shape_of(u), variant == VimVariant::v2 ? ", expected [B, L, 2·D] (forward ‖ backward channels), L > 0"
                                                        : ", expected [B, L, D], L > 0");
  TOKENMIX_CHECK(A.dimension(0) == 2 * D, op, ": A has shape ", shape_of(A), ", expected [2·D=", 2 * D,
                 ", N] (forward ‖ backward)");
  // A 1 × L grid: views with H = 1 and W = L over the caller's buffers.
  auto grid4 = [&](const ConstTensorView<float, 3>& t) {
    return ConstTensorView<float, 4>(t.data(), t.dimension(0), 1, t.dimension(1), t.dimension(2));
  };
  auto grid5 = [&](const ConstTensorView<float, 4>& t) {
    return ConstTensorView<float, 5>(t.data(), t.dimension(0), 1, t.dimension(1), t.dimension(2), t.dimension(3));
  };
  Tensor<float, 1> shared_D, shared_bias;  // v1: D and delta_bias are shared, the engine wants [2·D]
  if (variant == VimVariant::v1) {
    auto twice = [&](const std::optional<ConstTensorView<float, 1>>& v, Tensor<float, 1>& store, const char* name) {
      if (!v) return;
      tokenmix::detail::check_shape(op, name, *v, NamedShape<1>{{"D"}, {{D}}});
      store = Tensor<float, 1>(2 * D);
      std::copy(v->data(), v->data() + D, store.data());
      std::copy(v->data(), v->data() + D, store.data() + D);
    };
    twice(options.D, shared_D, "D");
    twice(options.delta_bias, shared_bias, "delta_bias");
    // emplace, not operator=: assigning to an engaged optional<TensorMap> would copy the values
    // into the caller's buffer instead of rebinding the view.
    if (options.D) options.D.emplace(shared_D);
    if (options.delta_bias) options.delta_bias.emplace(shared_bias);
  }
  if (z) options.z.emplace(grid4(*z));
  options.merge_scale = variant == VimVariant::v2 ? 0.5f : 1.0f;
  const bool v2 = variant == VimVariant::v2;
  const std::vector<ScanDirection> dirs = {
      ScanDirection{scan_path(ScanOrder::row_major, 1, L), D, 0, 0, 0, 0, 0},
      ScanDirection{scan_path(ScanOrder::row_major_reversed, 1, L), D, v2 ? D : 0, v2 ? D : 0, D, 0, v2 ? 1 : 0}};
  const Tensor<float, 4> out = selective_scan_2d<Arch>(grid4(u), grid4(delta), A, grid5(Bm), grid5(Cm), dirs, options, D);
  return Tensor<float, 3>(out.reshape(std::array<Index, 3>{Bt, L, D}));
}

// out [B, H, W, D] += bilinear resize of x [B, h, w, D], align_corners = False (PyTorch's
// F.interpolate(mode="bilinear") and MSVMamba's upsample): source coordinate (dst + 0.5)·in/out −
// 0.5, clamped at 0, neighbours clamped at the border.
inline void bilinear_resize_add(const ConstTensorView<float, 4>& x, TensorView<float, 4> out) {
  const Index Bt = x.dimension(0), h = x.dimension(1), w = x.dimension(2), D = x.dimension(3);
  const Index H = out.dimension(1), W = out.dimension(2);
  TOKENMIX_CHECK(h > 0 && w > 0 && H > 0 && W > 0 && out.dimension(0) == Bt && out.dimension(3) == D,
                 "bilinear_resize: cannot resize ", shape_of(x), " into ", shape_of(out));
  auto source = [](Index dst, Index in, Index outn, Index& i0, Index& i1, float& frac) {
    const float scale = static_cast<float>(in) / static_cast<float>(outn);
    float src = (static_cast<float>(dst) + 0.5f) * scale - 0.5f;
    if (src < 0) src = 0;
    i0 = std::min(static_cast<Index>(src), in - 1);
    i1 = std::min(i0 + 1, in - 1);
    frac = src - static_cast<float>(i0);
  };
  for (Index b = 0; b < Bt; ++b)
    for (Index i = 0; i < H; ++i) {
      Index i0, i1;
      float fi;
      source(i, h, H, i0, i1, fi);
      for (Index j = 0; j < W; ++j) {
        Index j0, j1;
        float fj;
        source(j, w, W, j0, j1, fj);
        const float* p00 = x.data() + ((b * h + i0) * w + j0) * D;
        const float* p01 = x.data() + ((b * h + i0) * w + j1) * D;
        const float* p10 = x.data() + ((b * h + i1) * w + j0) * D;
        const float* p11 = x.data() + ((b * h + i1) * w + j1) * D;
        float* o = out.data() + ((b * H + i) * W + j) * D;
        for (Index c = 0; c < D; ++c)
          o[c] += (1 - fi) * ((1 - fj) * p00[c] + fj * p01[c]) + fi * ((1 - fj) * p10[c] + fj * p11[c]);
      }
    }
}

inline Tensor<float, 4> bilinear_resize(const ConstTensorView<float, 4>& x, Index H, Index W) {
  TOKENMIX_CHECK(H > 0 && W > 0, "bilinear_resize: cannot resize ", shape_of(x), " to ", H, "x", W);
  Tensor<float, 4> out(x.dimension(0), H, W, x.dimension(3));
  out.setZero();
  bilinear_resize_add(x, TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

// MSVMamba multi-scale scan (sscore_type multiscale_4scan_12): parameter group 1 scans the full
// resolution input in RM order; parameter group 0 scans the half-resolution input (from the caller's
// stride-2 conv) ONCE along the joined path [rev RM, CM, rev CM] (no state reset between the
// parts); that branch's three outputs per cell are summed, bilinearly upsampled to H×W and added:
//   full:  u_full [B, H, W, D], delta_full [B, H, W, D], B_full, C_full [B, H, W, 1, N]
//   low:   u_low [B, h, w, D], delta_low [B, h, w, D], B_low, C_low [B, h, w, 1, N]
//   A [2·D, N], D, delta_bias [2·D]: rows [0, D) the low-resolution group, [D, 2D) the full one.
// out [B, H, W, D] = (y_full + upsample(y_low)) · merge_scale ⊙ silu(z). (The released block
// applies a LayerNorm to each branch before the sum: run selective_scan_2d per branch for that.)
inline std::vector<ScanDirection> multiscale_full_directions(Index H, Index W, Index D) {
  return {ScanDirection{scan_path(ScanOrder::row_major, H, W), D, 0, 0, D, 0, 0}};
}
inline std::vector<ScanDirection> multiscale_low_directions(Index h, Index w, Index D) {
  return {ScanDirection{joined_scan_path({scan_path(ScanOrder::row_major_reversed, h, w),
                                          scan_path(ScanOrder::col_major, h, w),
                                          scan_path(ScanOrder::col_major_reversed, h, w)}),
                        D, 0, 0, 0, 0, 0}};
}

template <class Arch = simd::default_arch>
void multiscale_scan_2d(const ConstTensorView<float, 4>& u_full, const ConstTensorView<float, 4>& delta_full,
                        const ConstTensorView<float, 5>& B_full, const ConstTensorView<float, 5>& C_full,
                        const ConstTensorView<float, 4>& u_low, const ConstTensorView<float, 4>& delta_low,
                        const ConstTensorView<float, 5>& B_low, const ConstTensorView<float, 5>& C_low,
                        const ConstTensorView<float, 2>& A, const SelectiveScan2dOptions& options,
                        TensorView<float, 4> out) {
  const Index D = u_full.dimension(3), h = u_low.dimension(1), w = u_low.dimension(2);
  SelectiveScan2dOptions branch = options;
  branch.z.reset();
  branch.merge_scale = 1.0f;
  selective_scan_2d<Arch>(u_full, delta_full, A, B_full, C_full,
                          multiscale_full_directions(u_full.dimension(1), u_full.dimension(2), D), branch, out);
  thread_local Tensor<float, 4> y_low;  // reused: see selective_scan_2d's buffers
  if (y_low.dimension(0) != u_low.dimension(0) || y_low.dimension(1) != h || y_low.dimension(2) != w ||
      y_low.dimension(3) != D)
    y_low = Tensor<float, 4>(u_low.dimension(0), h, w, D);
  selective_scan_2d<Arch>(u_low, delta_low, A, B_low, C_low, multiscale_low_directions(h, w, D), branch,
                          TensorView<float, 4>(y_low.data(), y_low.dimensions()));
  bilinear_resize_add(y_low, out);
  SelectiveScan2dOptions finish;
  finish.merge_scale = options.merge_scale;
  finish.z = options.z;
  finish.device = options.device;
  detail::finish_merge<Arch>(out.data(), out.size(), finish);  // z was checked by the full branch
}

template <class Arch = simd::default_arch>
Tensor<float, 4> multiscale_scan_2d(const ConstTensorView<float, 4>& u_full, const ConstTensorView<float, 4>& delta_full,
                                    const ConstTensorView<float, 5>& B_full, const ConstTensorView<float, 5>& C_full,
                                    const ConstTensorView<float, 4>& u_low, const ConstTensorView<float, 4>& delta_low,
                                    const ConstTensorView<float, 5>& B_low, const ConstTensorView<float, 5>& C_low,
                                    const ConstTensorView<float, 2>& A, const SelectiveScan2dOptions& options = {}) {
  Tensor<float, 4> out(u_full.dimension(0), u_full.dimension(1), u_full.dimension(2), u_full.dimension(3));
  multiscale_scan_2d<Arch>(u_full, delta_full, B_full, C_full, u_low, delta_low, B_low, C_low, A, options,
                           TensorView<float, 4>(out.data(), out.dimensions()));
  return out;
}

}  // namespace tokenmix::ssm
