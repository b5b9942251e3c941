#pragma once
// 2-D (and bidirectional 1-D) selective scans: one engine that scans paths (scan_path.hpp) through
// the image in place, and the layouts of the vision SSMs as thin wrappers that only
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
// Each direction runs the 1-D selective scan kernel (so every option and every speed-up of the scan
// applies) reading u and delta in place along its path and adding its outputs at the cells it
// visits (the kernel's grid layout: a row index per step, no copies of the image); B and C, N floats
// per step, are gathered along the path, or read in place too (at delta's rows) by directions over
// few channels. Paths are shared immutable values (scan_path caches them).

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/core/cache.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan_2d_types.hpp"

namespace tokenmix::ssm {

namespace detail {

using AlignedFloats = std::vector<float, xsimd::aligned_allocator<float, 64>>;

// B and C of one direction gathered along its path: bs, cs [B, T, N] (N floats per step, ~1/12 of
// what u and delta would cost at N = 16, D = 192; and Θ offsets need a copy anyway).
struct DirectionBC {
  AlignedFloats bs, cs;
};

// Gathers direction `d`'s B (plus the Θ offset of each step's move) and C along its path: the cell
// of step t, or step t itself when the parameters are not permuted; zeros at padding cells.
inline void gather_bc(const SelectiveScan2dShape& s, const float* Bm, const float* Cm, const ScanDirection& d,
                      const SelectiveScan2dOptions& o, DirectionBC& buf) {
  const ScanPath& path = *d.path;
  const Index T = path.length(), N = s.state, HW = s.height * s.width;
  buf.bs.resize(static_cast<std::size_t>(s.batch * T * N));
  buf.cs.resize(static_cast<std::size_t>(s.batch * T * N));
  const float* theta = o.B_offset ? o.B_offset->data() : nullptr;  // [5, N]
  for (Index b = 0; b < s.batch; ++b)
    for (Index t = 0; t < T; ++t) {
      const Index param_cell = o.permute_params ? path.index[static_cast<std::size_t>(t)] : t;
      float* bs = buf.bs.data() + (b * T + t) * N;
      float* cs = buf.cs.data() + (b * T + t) * N;
      // Loops, not std::copy: a memmove call per step cost 20% of a whole N = 1 scan.
      if (param_cell >= 0) {
        const float* b_src = Bm + ((b * HW + param_cell) * s.groups + d.group) * N;
        const float* c_src = Cm + (b_src - Bm);
        for (Index n = 0; n < N; ++n) bs[n] = b_src[n], cs[n] = c_src[n];
      } else {  // padding: the projections of a zero input
        for (Index n = 0; n < N; ++n) bs[n] = 0.0f, cs[n] = 0.0f;
      }
      if (theta) {
        const float* row = theta + path.moves[static_cast<std::size_t>(t)] * N;
        for (Index n = 0; n < N; ++n) bs[n] += row[n];
      }
    }
}

// How each direction merges into out: the number of its leading steps that write out (out = y,
// saving a zeroing pass and a read of out); its later steps add. Directions over the same channels
// form a class; within it, a direction's steps write while they visit cells that no earlier step of
// the class visited, and add from its first visit of a visited cell on: cross scan's first direction
// writes all its steps, EfficientVMamba's sub-grids and GroupMamba's groups all theirs, MSVMamba's
// joined low-resolution path its first third. Empty (out is zeroed, every step adds) for anything
// else: channel ranges that overlap without being equal, a direction visiting a fresh cell after a
// visited one, or an out value that no direction writes.
inline std::vector<Index> written_steps(const std::vector<ScanDirection>& directions, Index out_channels,
                                        Index cells) {
  struct ChannelClass {
    Index first, count;
    std::vector<char> visited;  // [H·W]
  };
  std::vector<ChannelClass> classes;
  std::vector<Index> steps(directions.size());
  for (std::size_t k = 0; k < directions.size(); ++k) {
    const ScanDirection& d = directions[k];
    ChannelClass* cls = nullptr;
    for (ChannelClass& c : classes) {
      if (c.first == d.out_channel && c.count == d.channels) cls = &c;
      else if (c.first < d.out_channel + d.channels && d.out_channel < c.first + c.count) return {};
    }
    if (!cls) cls = &classes.emplace_back(ChannelClass{d.out_channel, d.channels, std::vector<char>(cells, 0)});
    bool adding = false;
    for (Index t = 0; t < d.path->length(); ++t) {
      const Index cell = d.path->index[static_cast<std::size_t>(t)];
      if (cell < 0) continue;  // padding: writes nothing
      char& v = cls->visited[static_cast<std::size_t>(cell)];
      if (v) adding = true;
      else if (adding) return {};
      if (!adding) steps[k] = t + 1;
      v = 1;
    }
  }
  Index covered = 0;
  for (const ChannelClass& c : classes) {
    if (std::find(c.visited.begin(), c.visited.end(), 0) != c.visited.end()) return {};
    covered += c.count;
  }
  if (covered != out_channels) return {};
  return steps;
}

// written_steps of the last call on this thread, reused while the directions are the same: the
// analysis walks every path once (2% of an N = 1 GroupMamba call). The key keeps its paths alive,
// so a path at the same address is the same path.
inline const std::vector<Index>& cached_written_steps(const std::vector<ScanDirection>& directions,
                                                      Index out_channels, Index cells) {
  struct Key {
    std::vector<ScanDirection> directions;
    Index out_channels = -1, cells = -1;
    bool matches(const std::vector<ScanDirection>& d, Index oc, Index c) const {
      if (oc != out_channels || c != cells || d.size() != directions.size()) return false;
      for (std::size_t k = 0; k < d.size(); ++k) {
        const ScanDirection &a = d[k], &b = directions[k];
        if (a.path != b.path || a.channels != b.channels || a.out_channel != b.out_channel) return false;
      }
      return true;
    }
  };
  thread_local Key key;
  thread_local std::vector<Index> steps;
  if (!key.matches(directions, out_channels, cells)) {
    steps = written_steps(directions, out_channels, cells);
    key = Key{directions, out_channels, cells};
  }
  return steps;
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

namespace detail {

// Directions over at most this many channels read B and C in place (scan_directions).
constexpr Index kBcInPlaceMaxChannels = 64;

// A bilinear resampling added to the outputs of directions[0] as it writes them
// (SelectiveScanProblem::resample): src [B, rows, D] at the direction's channels, taps [H·W].
struct OutResample {
  const float* src = nullptr;
  Index rows = 0, stride = 0;
  const ResampleTap* taps = nullptr;
};

// The engine's body. written_steps decides which steps of the directions write out, and out is
// zeroed first when it cannot. Resampled: directions[0] (which must then visit every cell of out's
// channels once, in row-major order, and write them) writes y + `resample` of its cells (a template
// parameter: only multiscale_scan_2d compiles the kernel's resampling mode).
template <class Arch, bool Resampled = false>
void scan_directions(const ConstTensorView<float, 4>& u, const ConstTensorView<float, 4>& delta,
                     const ConstTensorView<float, 2>& A, const ConstTensorView<float, 5>& Bm,
                     const ConstTensorView<float, 5>& Cm, const std::vector<ScanDirection>& directions,
                     const SelectiveScan2dOptions& options, TensorView<float, 4> out,
                     const OutResample& resample = {}) {
  const SelectiveScan2dShape s = detail::check_selective_scan_2d_args(
      "selective_scan_2d", u, delta, A, Bm, Cm, directions, options, out.dimension(3), &out);
  if (s.batch == 0) return;
  const std::vector<Index>& written = detail::cached_written_steps(directions, s.out_channels, s.height * s.width);
  if (written.empty()) out.setZero();
  TOKENMIX_CHECK(Resampled == (resample.taps != nullptr) &&
                     (!resample.taps || (!written.empty() && written[0] == directions[0].path->length() &&
                                         directions[0].path->is_identity())),
                 "selective_scan_2d: a resample needs a first direction that writes every cell in row-major order");
  // Reused across calls on this thread: fresh buffers per call would page-fault on every call
  // (~15 µs per 4 KiB page in this VM).
  thread_local std::vector<detail::DirectionBC> bcs;  // per direction: a pair runs at once (below)
  if (bcs.size() < directions.size()) bcs.resize(directions.size());
  std::vector<detail::SelectiveScanProblem> problems(directions.size());
  for (std::size_t k = 0; k < directions.size(); ++k) {
    const ScanDirection& d = directions[k];
    detail::DirectionBC& bc = bcs[k];
    const Index T = d.path->length(), N = s.state;
    // B and C read in place or gathered along the path. The gather costs ~1.5% of an N = 1 scan over
    // 192 channels, paid once per direction; in place, every channel block of the direction looks
    // them up per token, along strided paths from other lines: measured (56x56, N = 1 and 16), in
    // place is 5-7% faster over GroupMamba's 48 channels a direction, even at 96 and 1-3% slower
    // over VMamba's 192. Θ offsets need the copy.
    // A row-major path visits the cells in memory order: the kernel then reads the image as a
    // dense sequence (rows computed once, not per chunk: 1-2% of an N = 1 scan), and B and C in
    // place at any width (a gather along it would be a copy).
    const bool dense = d.path->is_identity();
    const bool bc_in_grid = !options.B_offset && (dense || d.channels <= kBcInPlaceMaxChannels);
    if (!bc_in_grid) detail::gather_bc(s, Bm.data(), Cm.data(), d, options, bc);
    // u, delta and out are read and written in place along the path (the kernel's grid layout).
    detail::SelectiveScanProblem& p = problems[k];
    p.batch = s.batch, p.length = T, p.channels = d.channels, p.state = N, p.groups = 1;
    p.u = u.data() + d.u_channel;
    p.delta = delta.data() + d.delta_channel;
    p.A = A.data() + d.param_channel * N;
    if (bc_in_grid) {  // [B, H·W, G, N] at group d.group, read at delta's rows
      p.B = Bm.data() + d.group * N, p.C = Cm.data() + d.group * N;
      p.bc_in_grid = true, p.bc_stride = s.groups * N;
    } else {
      p.B = bc.bs.data(), p.C = bc.cs.data();
    }
    p.D = options.D ? options.D->data() + d.param_channel : nullptr;
    p.delta_bias = options.delta_bias ? options.delta_bias->data() + d.param_channel : nullptr;
    p.delta_softplus = options.delta_softplus;
    p.out = out.data() + d.out_channel;
    p.rows_per_batch = s.height * s.width;
    p.u_stride = s.u_channels, p.delta_stride = s.delta_channels, p.out_stride = s.out_channels;
    p.path = dense ? nullptr : d.path->index.data();
    p.param_path = options.permute_params ? p.path : nullptr;  // PlainMamba's released code: raster order
    p.out_written_steps = written.empty() ? 0 : written[k];
    p.out_accumulate = p.out_written_steps < T;
    if (k == 0 && resample.taps) {
      p.resample = resample.src, p.resample_taps = resample.taps;
      p.resample_rows = resample.rows, p.resample_stride = resample.stride;
    }
  }
  // Two consecutive directions that only write (every step of each visits a cell no earlier
  // direction over its channels visited: they touch disjoint out values, so their order does not
  // matter) run interleaved, chunk by chunk. GroupMamba's groups are 48-channel slices (3 cache
  // lines) of each 192-channel cell: run one after the other, each direction also pulls the lines
  // its neighbours use (the adjacent-line and stream prefetchers), fetched again when their turn
  // comes; run in pairs (RM + CM, rev RM + rev CM: rows and columns swept from the same corner),
  // the pair's lines meet in cache. 56x56x192, N = 1: 0.94 of the time (vs_1d 1.08-1.11 instead of
  // 1.18-1.20); all four interleaved: 1.13-1.14 of one RM direction over the 192 channels. Only
  // where the image (u, delta, out) is larger than the L2: when it fits, the lines stay there from
  // one direction to the next, and interleaving measured 1.03x the time (14x14x384).
  const double image_bytes = static_cast<double>(s.batch * s.height * s.width) *
                             static_cast<double>(s.u_channels + s.delta_channels + s.out_channels) * sizeof(float);
  const bool interleave = image_bytes > static_cast<double>(l2_cache_bytes());
  std::size_t k = 0;
  if constexpr (Resampled)
    detail::run_scan_kernel<Arch, detail::ScanMode::forward_resampled>(problems[k++], options.device);
  while (k < problems.size()) {
    const bool pair = interleave && k + 1 < problems.size() && !problems[k].out_accumulate &&
                      !problems[k + 1].out_accumulate;
    const int count = pair ? 2 : 1;
    detail::run_scan_kernel<Arch, detail::ScanMode::forward>(&problems[k], count, options.device);
    k += static_cast<std::size_t>(count);
  }
  detail::finish_merge<Arch>(out.data(), out.size(), options);
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
  detail::scan_directions<Arch>(u, delta, A, Bm, Cm, directions, options, out);
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
// out = Σ_k y_k (4 D-terms), then the gate. The released code adds the dt bias twice (dt_proj
// is a Linear with bias and its bias is also passed as delta_bias): pass delta with the bias
// included AND delta_bias to load those checkpoints (tests/data/make_scan_2d_fixture.py does).
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

namespace detail {

// The source cells and weights of each cell of a bilinear resize from h x w to H x W, align_corners
// = False (PyTorch's F.interpolate(mode="bilinear") and MSVMamba's upsample): source coordinate
// (dst + 0.5)·in/out − 0.5, clamped at 0, neighbours clamped at the border.
struct BilinearTaps {
  // Per destination cell: source cells (i0, j0), (i0, j1), (i1, j0), (i1, j1) as i·w + j, weights
  // (1−fi)(1−fj), (1−fi)fj, fi(1−fj), fi·fj.
  using Tap = ResampleTap;
  Index h = 0, w = 0, H = 0, W = 0;
  std::vector<Tap> taps;  // [H·W]

  BilinearTaps() = default;
  BilinearTaps(Index h_, Index w_, Index H_, Index W_)
      : h(h_), w(w_), H(H_), W(W_), taps(static_cast<std::size_t>(H_ * W_)) {
    auto source = [](Index dst, Index in, Index outn, Index& i0, Index& i1, float& frac) {
      const float scale = static_cast<float>(in) / static_cast<float>(outn);
      float src = (static_cast<float>(dst) + 0.5f) * scale - 0.5f;
      if (src < 0) src = 0;
      i0 = std::min(static_cast<Index>(src), in - 1);
      i1 = std::min(i0 + 1, in - 1);
      frac = src - static_cast<float>(i0);
    };
    for (Index i = 0; i < H; ++i) {
      Index i0, i1;
      float fi;
      source(i, h, H, i0, i1, fi);
      for (Index j = 0; j < W; ++j) {
        Index j0, j1;
        float fj;
        source(j, w, W, j0, j1, fj);
        taps[static_cast<std::size_t>(i * W + j)] = Tap{{i0 * w + j0, i0 * w + j1, i1 * w + j0, i1 * w + j1},
                                                         {(1 - fi) * (1 - fj), (1 - fi) * fj, fi * (1 - fj), fi * fj}};
      }
    }
  }
  bool resizes(Index h_, Index w_, Index H_, Index W_) const { return h == h_ && w == w_ && H == H_ && W == W_; }
};

// out [B, H, W, D] (+)= bilinear resize of x [B, h, w, D] (BilinearTaps). add: out += resize, else
// out = resize.
inline void bilinear_resize_into(const ConstTensorView<float, 4>& x, TensorView<float, 4> out, bool add) {
  const Index Bt = x.dimension(0), h = x.dimension(1), w = x.dimension(2), D = x.dimension(3);
  const Index H = out.dimension(1), W = out.dimension(2);
  TOKENMIX_CHECK(h > 0 && w > 0 && H > 0 && W > 0 && out.dimension(0) == Bt && out.dimension(3) == D,
                 "bilinear_resize: cannot resize ", shape_of(x), " into ", shape_of(out));
  const BilinearTaps taps(h, w, H, W);
  for (Index b = 0; b < Bt; ++b)
    for (Index cell = 0; cell < H * W; ++cell) {
      const BilinearTaps::Tap& tap = taps.taps[static_cast<std::size_t>(cell)];
      const float* src = x.data() + b * h * w * D;
      float* o = out.data() + (b * H * W + cell) * D;
      for (Index c = 0; c < D; ++c) {
        const float r = tap.weight[0] * src[tap.row[0] * D + c] + tap.weight[1] * src[tap.row[1] * D + c] +
                        tap.weight[2] * src[tap.row[2] * D + c] + tap.weight[3] * src[tap.row[3] * D + c];
        o[c] = add ? o[c] + r : r;
      }
    }
}

}  // namespace detail

// out [B, H, W, D] += bilinear resize of x [B, h, w, D] (see detail::bilinear_resize_into).
inline void bilinear_resize_add(const ConstTensorView<float, 4>& x, TensorView<float, 4> out) {
  detail::bilinear_resize_into(x, out, /*add=*/true);
}

inline Tensor<float, 4> bilinear_resize(const ConstTensorView<float, 4>& x, Index H, Index W) {
  TOKENMIX_CHECK(H > 0 && W > 0, "bilinear_resize: cannot resize ", shape_of(x), " to ", H, "x", W);
  Tensor<float, 4> out(x.dimension(0), H, W, x.dimension(3));
  detail::bilinear_resize_into(x, TensorView<float, 4>(out.data(), out.dimensions()), /*add=*/false);
  return out;
}

// MSVMamba multi-scale scan (sscore_type multiscale_4scan_12): parameter group 1 scans the full
// resolution input in RM order; parameter group 0 scans the half-resolution input (from the caller's
// stride-2 conv) ONCE along the joined path [rev RM, CM, rev CM] (no state reset between the
// parts); that branch's three outputs per cell are summed, bilinearly upsampled to H×W and added:
//   full:  u_full [B, H, W, D], delta_full [B, H, W, D], B_full, C_full [B, H, W, 1, N]
//   low:   u_low [B, h, w, D], delta_low [B, h, w, D], B_low, C_low [B, h, w, 1, N]
//   A [2·D, N], D, delta_bias [2·D]: rows [0, D) the low-resolution group, [D, 2D) the full one.
// out [B, H, W, D] = (y_full + upsample(y_low)) · merge_scale ⊙ silu(z). The released block
// (x_selective_scan, K = 1) applies out_norm to every token of the joined low-resolution sequence,
// i.e. to each third BEFORE the three are summed per cell; this op sums them (identity out_norm, as
// the fixture tests). To reproduce a released checkpoint exactly, gather the joined sequence
// (multiscale_low_directions' path) and run ssm::selective_scan on it, then norm, sum and upsample:
// splitting the joined path into three directions would reset the state between the thirds.
inline std::vector<ScanDirection> multiscale_full_directions(Index H, Index W, Index D) {
  return {ScanDirection{scan_path(ScanOrder::row_major, H, W), D, 0, 0, D, 0, 0}};
}
inline std::vector<ScanDirection> multiscale_low_directions(Index h, Index w, Index D) {
  return {ScanDirection{
      joined_scan_path({ScanOrder::row_major_reversed, ScanOrder::col_major, ScanOrder::col_major_reversed}, h, w), D,
      0, 0, 0, 0, 0}};
}

template <class Arch = simd::default_arch>
void multiscale_scan_2d(const ConstTensorView<float, 4>& u_full, const ConstTensorView<float, 4>& delta_full,
                        const ConstTensorView<float, 5>& B_full, const ConstTensorView<float, 5>& C_full,
                        const ConstTensorView<float, 4>& u_low, const ConstTensorView<float, 4>& delta_low,
                        const ConstTensorView<float, 5>& B_low, const ConstTensorView<float, 5>& C_low,
                        const ConstTensorView<float, 2>& A, const SelectiveScan2dOptions& options,
                        TensorView<float, 4> out) {
  const Index D = u_full.dimension(3), h = u_low.dimension(1), w = u_low.dimension(2);
  const Index H = u_full.dimension(1), W = u_full.dimension(2);
  SelectiveScan2dOptions branch = options;
  branch.z.reset();
  branch.merge_scale = 1.0f;
  // The low branch first. Its upsample is added by the full-resolution scan as it writes out
  // (SelectiveScanProblem::resample: the 4 taps per output vector in the kernel's token loop, whose
  // FMA-bound arithmetic leaves their loads room). 56x56x192, N = 1: the upsample costs ~0.17 of a
  // 1-D scan that way; a separate resize pass followed by the scan's read of out cost 0.13-0.2,
  // writing it into out chunk by chunk just before the scan read it back ~0.23.
  const std::vector<ScanDirection> full = multiscale_full_directions(H, W, D);
  detail::check_selective_scan_2d_args("multiscale_scan_2d", u_full, delta_full, A, B_full, C_full, full, branch, D,
                                       &out);
  thread_local Tensor<float, 4> y_low;  // reused: see selective_scan_2d's buffers
  if (y_low.dimension(0) != u_low.dimension(0) || y_low.dimension(1) != h || y_low.dimension(2) != w ||
      y_low.dimension(3) != D)
    y_low = Tensor<float, 4>(u_low.dimension(0), h, w, D);
  selective_scan_2d<Arch>(u_low, delta_low, A, B_low, C_low, multiscale_low_directions(h, w, D), branch,
                          TensorView<float, 4>(y_low.data(), y_low.dimensions()));
  thread_local detail::BilinearTaps taps;  // per image size, reused
  if (!taps.resizes(h, w, H, W)) taps = detail::BilinearTaps(h, w, H, W);
  detail::scan_directions<Arch, true>(u_full, delta_full, A, B_full, C_full, full, branch, out,
                                detail::OutResample{y_low.data(), h * w, D, taps.taps.data()});
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
