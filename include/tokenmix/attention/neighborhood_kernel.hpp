#pragma once
// The fused neighborhood-attention kernel; the entry point and its contract are in
// attention/neighborhood_attention.hpp, the window rule in attention/neighborhood_types.hpp.
//
// Queries in the lanes. Along the last axis (dilation d) the queries are in *columns*, either one
// dilation group's (in-group order: column c of group g is position g + d·c; window slot j of the
// query in column c is column a + j) or all of them in position order (one group; slot j at column
// a + j·d): the latter when one group's queries would fill fewer lanes (groups shorter than W).
// A *tile* is W consecutive columns of one group at fixed outer coordinates, the *query row*; lane
// i's slot 0 is at column a_i, and inside the axis a_i = a_0 + i, so the keys of slot j of all W
// lanes are W consecutive columns: one vector load from a transposed copy of the key row, the *row
// slab* ([P, RW]: column c_lo + c of the group in slab column c, for the columns a run of tiles
// needs). Tiles whose windows are shifted inward at a border load the same way from
// columns past the axis that hold the keys their windows have instead (NaPlan::slab_key, "wrapped":
// the same keys in another slot order). Strided axes, whose windows repeat, take slot j's keys with
// one two-register permute (AVX-512) from the same slab, or (other archs, very large strides) from
// a per-tile gathered copy [P, K, W].
//
// Half tiles (at most W/2 queries, AVX-512) pack two of the block's query rows into each vector for
// the logits (na_qk_pairs).
//
// Reuse across query rows: rows are processed in blocks of up to 3 consecutive rows of one dilation
// group along axis R-2; a key row inside the windows of several of them is loaded once per (p, slot)
// and multiplied with each row's queries (a register block of I <= 3 rows × J <= 8 slots). A work
// item is (batch, kv head or every kv head (heads_inside), a run of <= 64 tiles, a run of blocks);
// its row slabs are transposed once and kept in a ring per kv head while the item walks down its
// blocks, so every key is transposed once per item, not once per query row or tile.
//
// The weighted sum, where the lanes' windows are shifted copies with slot step 1, 2 or 4 (every
// tile of a dilation-1 axis but causal borders and strided axes), has the values' channels in the
// lanes and each weight broadcast (na_av_rows): the value rows are read in place and each query's
// output row written directly. Other tiles keep the queries in the lanes over a slab of transposed
// values (Ot, then transposed out); see na_value_step.
//
// Buffers, per tile, query row i of the block and head:
//   Qt [P, W]        the queries, transposed
//   S  [slots, W]    q·k (slot = index of the key row in the row's window · K_last + j), then the
//                    logits in log2 units (times scale·log2(e), plus rpb), then exp2(S - m) in place;
//                    where no rpb or mask changes them, the softmax scales them on the way instead
//   out rows         Σ_slots exp2(S - m) · v, divided by l = Σ_slots exp2(S - m), lane block by lane block
//                    (or through Ot [Pv, W])
// Two passes (all logits, their max, then PV): a window is at most a few hundred slots, S stays in
// L1, and no online rescaling is needed. Every query's arithmetic is the same whatever the blocking
// and the thread count, so the output is bitwise identical for any number of threads. A dilated
// axis's tile order (position or dilation-group order, na_make_plan) changes the sums' order, and in
// 1-D it also depends on whether the tensors outgrow half the L3: on machines with other L3 sizes a
// long dilated 1-D call may differ in its last bits (never the thread count).
//
// The split operators (attention/neighborhood_split.hpp) run the same kernel in another NaOutput
// mode: logits (qk only; S times scale, not log2(e), plus rpb, written to [.., H, S_full] in NATTEN's
// slot order) and weighted_sum (S read from given weights [.., H, S_full], then PV, no softmax).
// A kernel slot (key row r of the row's window, slot j of lane i) is NATTEN's slot out_base[r] +
// window_slot(i, j): the outer axes' index with radix K_a instead of the windows' row counts, and
// along the last axis j itself, j - skip (causal cuts) or (rot + j) mod K (wrapped border tiles).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/cache.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::attention::detail {

constexpr int kNaMaxRows = 3;    // query rows per block (register block I)
constexpr int kNaMaxSlots = 8;   // window slots per micro-kernel call (register block J)
constexpr Index kNaMaxLanes = 16;
constexpr Index kNaRpbPermuteMaxK = 16;  // rpb rows of 2K - 1 <= 31 entries: two vectors (AVX-512)

// What the kernel computes: softmax(QKᵀ)V (fused), the logits only (neighborhood_qk), their softmax
// (neighborhood_attention_weights), or the sum of given weights times V (neighborhood_av).
enum class NaOutput { attention, logits, probabilities, weighted_sum };

// dst[c][lane] = rows[lane][c] for lanes < W and columns c < n_cols; dst rows have stride ld. Full
// column blocks go through registers.
template <class Arch>
void transpose_rows_in(const float* const* rows, Index n_cols, float* dst, Index ld) {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  for (Index c0 = 0; c0 < n_cols; c0 += W) {
    const Index cols = std::min(W, n_cols - c0);
    if (cols == W) {
      const float* at[kNaMaxLanes];
      for (Index lane = 0; lane < W; ++lane) at[lane] = rows[lane] + c0;
      simd::transpose_square_rows<Arch>(at, dst + c0 * ld, ld, W);
      continue;
    }
    alignas(64) float tile[kNaMaxLanes * kNaMaxLanes] = {};  // [lane, column]
    for (Index lane = 0; lane < W; ++lane)
      for (Index c = 0; c < cols; ++c) tile[lane * W + c] = rows[lane][c0 + c];
    simd::transpose_square<Arch>(tile, W, dst + c0 * ld, ld, cols);
  }
}

// The same with row(lane) = src + (clamp(lane, lane_lo, lane_hi - 1) - lane_lo)·src_stride: lanes
// outside [lane_lo, lane_hi) repeat the nearest valid row (finite values the caller never uses;
// only valid rows are read).
template <class Arch>
void transpose_lanes_in(const float* src, Index src_stride, Index lane_lo, Index lane_hi, Index n_cols, float* dst,
                        Index ld) {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  // Every lane its own row and whole column blocks (the tiles inside the axis, P a multiple of W):
  // strided loads, no row pointers through memory (2-D 56x56 K 7 0.98-0.99 of the time, in-process
  // alternation on the Zen 5 VM).
  if (lane_lo == 0 && lane_hi == W && n_cols % W == 0) {
    for (Index c0 = 0; c0 < n_cols; c0 += W) simd::transpose_square<Arch>(src + c0, src_stride, dst + c0 * ld, ld, W);
    return;
  }
  const float* rows[kNaMaxLanes];
  for (Index lane = 0; lane < W; ++lane)
    rows[lane] = src + (std::min(std::max(lane, lane_lo), lane_hi - 1) - lane_lo) * src_stride;
  transpose_rows_in<Arch>(rows, n_cols, dst, ld);
}

// The inverse for the outputs: row(lane)[c] = src[c][lane] for lanes < n_lanes and c < n_cols;
// row(lane) = dst + lane·dst_stride. src has at least round_up(n_cols, W) rows of stride W.
template <class Arch>
void transpose_lanes_out(const float* src, Index n_cols, Index n_lanes, float* dst, Index dst_stride) {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  for (Index c0 = 0; c0 < n_cols; c0 += W) {
    const Index cols = std::min(W, n_cols - c0);
    if (cols == W) {
      simd::transpose_square<Arch>(src + c0 * W, W, dst + c0, dst_stride, n_lanes);
      continue;
    }
    alignas(64) float tile[kNaMaxLanes * kNaMaxLanes];  // [lane, column]
    simd::transpose_square<Arch>(src + c0 * W, W, tile, W, n_lanes);
    for (Index lane = 0; lane < n_lanes; ++lane)
      for (Index c = 0; c < cols; ++c) dst[lane * dst_stride + c0 + c] = tile[lane * W + c];
  }
}

// Prefetches n_rows rows of n_floats floats, stride floats apart (the strided token rows a tile
// reads next; the hardware prefetchers do not follow 16 scattered rows far enough ahead).
inline void prefetch_rows(const float* first, Index stride, Index n_rows, Index n_floats, bool for_write = false) {
  for (Index r = 0; r < n_rows; ++r)
    for (Index f = 0; f < n_floats; f += 16) {
      if (for_write)
        __builtin_prefetch(first + r * stride + f, 1);
      else
        __builtin_prefetch(first + r * stride + f, 0);
    }
}

// 1-D: the cache lines of a later tile's token rows (q, k, v, and out unless streamed), prefetched a
// line per range and iteration from inside the qk micro-kernels (na_qk_micro) instead of in one
// burst. A burst of a few hundred prefetches that miss to DRAM fills the L1 miss buffers and stalls
// the core until DRAM answers; spread over the FMAs, the same prefetches overlap with them. With the
// slab filled as the tiles reach it and long outputs streamed (NaPlan::stream_out), on the 2-vCPU
// Zen 5 VM (in-process alternation with the previous code, which filled each run's slab at once,
// prefetching 8 chunks ahead, and the q and out rows 2 tiles ahead, in bursts; 2 MiB-aligned buffers
// advised for huge pages): L 65536 K 7 7.1-7.2 ms against 11.9-12.1, L 4096 0.42 against 0.42-0.43;
// K 33 18.5 ms against 21.0, K 65 24.9 against 25.3.
//
// Tiles of consecutive tokens only (their rows are one range of memory per tensor); a micro-kernel
// call of `depth` iterations takes the next per_step · depth lines of every range.
struct NaLinePrefetch {
  struct Range {
    std::uintptr_t at = 0;  // the next line
    Index left = 0;         // lines left
    int per_step = 0;       // lines per micro-kernel iteration
    bool write = false;
  };
  std::array<Range, 4> ranges;
  int n = 0;
  bool one_per_step = false;  // every range at most one line per iteration (see step)

  // The lines holding n_floats floats from first.
  void add(const float* first, Index n_floats, bool write = false) {
    if (n_floats <= 0) return;
    Range& r = ranges[std::size_t(n++)];
    r.at = reinterpret_cast<std::uintptr_t>(first) & ~std::uintptr_t(63);
    r.left = Index((reinterpret_cast<std::uintptr_t>(first + n_floats) - r.at + 63) / 64), r.write = write;
  }
  // Starts over with no lines, after issuing whatever the last tile's calls left.
  void restart() {
    for (int i = 0; i < n; ++i)
      for (Range& r = ranges[std::size_t(i)]; r.left > 0; --r.left, r.at += 64) issue(r.at, r.write);
    n = 0;
  }
  // Spreads every range's lines over `steps` micro-kernel iterations.
  void spread(Index steps) {
    one_per_step = true;
    for (int i = 0; i < n; ++i) {
      Range& r = ranges[std::size_t(i)];
      r.per_step = int((r.left + steps - 1) / steps);
      one_per_step = one_per_step && r.per_step <= 1;
    }
  }
  // Iteration p of a micro-kernel call: its lines of every range. Where every range has no more
  // lines than iterations (one_per_step: a full tile's q, k, v and out rows, H·P floats a token,
  // over the H·P iterations of its first-chunk calls) each takes line p: one compare per range
  // instead of the loop, whose bookkeeping made the qk calls of 1-D L 4096 spend more on it than
  // on their FMAs. In-process alternation on the Zen 5 VM, minima of 30 rounds, order rotated:
  // L 4096 K 7 0.39-0.40 ms against 0.45-0.47; L 65536 (outputs streamed) on transparent huge pages
  // 6.1-6.4 ms against 7.3-7.7, on 4 KiB pages 8.9-10.4 against 8.8-9.3.
  TOKENMIX_ALWAYS_INLINE void step(Index p) const {
    if (one_per_step) {
      for (int i = 0; i < n; ++i)
        if (const Range& r = ranges[std::size_t(i)]; p < r.left) issue(r.at + std::uintptr_t(p) * 64, r.write);
      return;
    }
    for (int i = 0; i < n; ++i) {
      const Range& r = ranges[std::size_t(i)];
      for (int x = 0; x < r.per_step; ++x)
        if (const Index line = p * r.per_step + x; line < r.left) issue(r.at + std::uintptr_t(line) * 64, r.write);
    }
  }
  // After a call of `steps` iterations.
  void taken(Index steps) {
    for (int i = 0; i < n; ++i) {
      Range& r = ranges[std::size_t(i)];
      const Index count = std::min(r.left, steps * r.per_step);
      r.at += std::uintptr_t(count) * 64, r.left -= count;
    }
  }
  static TOKENMIX_ALWAYS_INLINE void issue(std::uintptr_t line, bool write) {
    if (write)
      __builtin_prefetch(reinterpret_cast<const void*>(line), 1);
    else
      __builtin_prefetch(reinterpret_cast<const void*>(line), 0);
  }
};

// The same for a dilation group's tile (1-D in-group order, tensors streamed from memory only: see
// NeighborhoodKernel::spreads_prefetch), whose token rows are d tokens apart: rows of row_lines lines
// (at most 2^shift), stride bytes apart from row0; line x of a range is line x mod 2^shift of row
// x / 2^shift (lines past row_lines are skipped). A type of its own, so that the contiguous ranges'
// state, which every 1-D qk call copies, and their loop stay as they were: with both kinds in one
// type, the loop's check of the kind made 1-D L 4096 K 7 dilation 4 take 1.06x the time.
struct NaRowPrefetch {
  struct Range {
    std::uintptr_t row0 = 0, stride = 0;
    Index row_lines = 0, left = 0, done = 0;  // lines left, lines taken
    int shift = 0, per_step = 0;
    bool write = false;
    TOKENMIX_ALWAYS_INLINE void issue_line(Index x) const {
      const Index col = x & ((Index(1) << shift) - 1);
      if (col >= row_lines) return;
      const std::uintptr_t row = (row0 + std::uintptr_t(x >> shift) * stride) & ~std::uintptr_t(63);
      NaLinePrefetch::issue(row + std::uintptr_t(col) * 64, write);
    }
  };
  std::array<Range, 4> ranges;
  int n = 0;

  // The lines of n_rows rows of n_floats floats, stride floats apart, from first.
  void add_rows(const float* first, Index n_floats, Index n_rows, Index stride, bool write = false) {
    if (n_floats <= 0 || n_rows <= 0) return;
    Range& r = ranges[std::size_t(n++)];
    r.row0 = reinterpret_cast<std::uintptr_t>(first), r.stride = std::uintptr_t(stride) * sizeof(float);
    r.row_lines = Index(((r.row0 & 63) + std::uintptr_t(n_floats) * sizeof(float) + 63) / 64);  // at most, any row
    r.shift = 0;
    while ((Index(1) << r.shift) < r.row_lines) ++r.shift;
    r.left = n_rows << r.shift, r.done = 0, r.write = write;
  }
  // Starts over with no lines, after issuing whatever the last tile's calls left.
  void restart() {
    for (int i = 0; i < n; ++i)
      for (Range& r = ranges[std::size_t(i)]; r.left > 0; --r.left, ++r.done) r.issue_line(r.done);
    n = 0;
  }
  // Spreads every range's lines over `steps` micro-kernel iterations.
  void spread(Index steps) {
    for (int i = 0; i < n; ++i) {
      Range& r = ranges[std::size_t(i)];
      r.per_step = int((r.left + steps - 1) / steps);
    }
  }
  // Iteration p of a micro-kernel call: its lines of every range.
  TOKENMIX_ALWAYS_INLINE void step(Index p) const {
    for (int i = 0; i < n; ++i) {
      const Range& r = ranges[std::size_t(i)];
      for (int x = 0; x < r.per_step; ++x)
        if (const Index line = p * r.per_step + x; line < r.left) r.issue_line(r.done + line);
    }
  }
  // After a call of `steps` iterations.
  void taken(Index steps) {
    for (int i = 0; i < n; ++i) {
      Range& r = ranges[std::size_t(i)];
      const Index count = std::min(r.left, steps * r.per_step);
      r.left -= count, r.done += count;
    }
  }
};

// One tile of the last axis and its lanes' windows.
struct NaTile {
  enum class Keys { shifted, permuted, gathered };
  Index group = 0, first = 0, count = 0;  // lanes = the group's columns first .. first + count - 1
  Index a_min = 0, a_max = 0;             // the smallest and largest slot-0 column
  Keys keys = Keys::shifted;
  bool masked = false;                    // a lane's window has fewer than K keys (causal)
  bool wrapped = false;                   // shifted over wrapped border columns (NaPlan::slab_key)
  alignas(64) std::int32_t col[kNaMaxLanes] = {};  // window start - a_min, per lane
  alignas(64) float skip[kNaMaxLanes] = {};        // leading slots outside the window (causal)
  Index a[kNaMaxLanes] = {};                       // slot 0's column, per lane (slot j: a + j·slot_step)
  Index rpb_first[kNaMaxLanes] = {};               // rpb index of slot 0 along the last axis
  Index lo[kNaMaxLanes] = {};                      // wrapped: the window's first column, per lane
  std::int32_t rot[kNaMaxLanes] = {};              // wrapped: slot j holds window key (rot + j) mod K
};

// A run of consecutive tiles of one group and the key columns their row slabs hold.
struct NaTileRun {
  Index group = 0, first = 0, tiles = 0;  // tiles at the group's columns first, first + W, ...
  Index tile0 = 0;                        // its first tile in NaPlan::tiles
  Index c_lo = 0, width = 0;             // row slab column c = group column c_lo + c, c < width (multiple of W)
  Index read_end = 0;                     // slab columns >= read_end are read only by lanes past the axis end
};

// A tile and the batch it is taken in.
struct NaTileAt {
  const NaTile* tile = nullptr;
  Index b = 0;
};

// One key row of a block's union of windows, and the block's query rows that see it.
struct NaUnionRow {
  Index key_row = 0;
  int n_active = 0;
  int active[kNaMaxRows] = {};
  Index slot_base[kNaMaxRows] = {};  // first slot of this key row in the active row's S
};

template <int R>
struct NaPlan {
  Index B = 0, H = 0, Hkv = 0, P = 0, Pv = 0, tokens = 0;
  std::array<Index, R> extent{};
  NeighborhoodParams<R> params;
  float q_scale = 0;  // scale·log2(e): from q·k to the log2 units of S (the split logits: scale)
  // The last axis.
  Index L = 0, K = 0, dil = 1, stride = 1, W = 1;
  // Columns: groups (d, or 1 in position order), positions between columns (d or 1) and columns
  // between window slots (1 or d).
  Index groups = 1, col_step = 1, slot_step = 1;
  bool causal = false, permute = false;  // permute: border tiles may use the AVX-512 permute
  std::vector<NaTileRun> runs;
  std::vector<NaTile> tiles;  // every run's tiles, run after run (built once per call)
  std::vector<int> chunk;  // slot chunk sizes along the last axis (sum K, each <= kNaMaxSlots)
  // Outer axes: rows = ∏ extent[0 .. R-2] (1 in 1-D); blocks of up to 3 rows.
  Index rows = 1;
  std::vector<std::array<Index, kNaMaxRows + 1>> blocks;  // {n, row_0, .., row_{n-1}}
  Index max_slots = 0, max_union = 0, max_width = 0;
  Index ring_entries = 0, cache_entries = 0;  // row-slab cache: one ring per kv head of an item
  bool any_gathered = false;
  // Whether some tile's weighted sum keeps the queries in the lanes (na_value_step 0): the slabs
  // then hold the transposed values after the keys; and whether some tile's takes na_av_rows.
  bool value_slabs = false, value_rows = false;
  // Whether an item runs every kv head (else one). 1-D: always, tile by tile, so the token rows
  // are read whole and in order. 2-D: when the rings of all kv heads fit a part of L2, head by head
  // within each block (see na_make_plan); 3-D: never (its rings are too large).
  bool heads_inside = R == 1;
  Index block_runs = 1;  // runs of consecutive blocks per item (sizes differ by at most one block)
  // 1-D: the weighted sums' output rows go to memory with non-temporal stores (see na_make_plan).
  bool stream_out = false;

  Index group_length(Index g) const { return (L - g + col_step - 1) / col_step; }
  // The first block of block run r (r = block_runs: one past the last block).
  Index first_block(Index r) const { return r * Index(blocks.size()) / block_runs; }

  // Border tiles as shifted tiles. A lane whose window is shifted inward at the axis start reads,
  // at the window slots the centred rule puts before key 0, the keys its window has past the centred
  // one's end: column c < 0 holds the key of column c + K·s (s = slot_step; and column c >= Lg that
  // of column c - K·s at the end: the same dilation group). Lane i's K slots at columns
  // a_0 + i + j·s are then exactly its window, in another order:
  // the softmax and the weighted sum do not depend on the order, and the rpb takes each slot's key.
  // So border tiles need neither the permute (AVX-512) nor the gather (other archs). Non-causal
  // stride-1 axes only (causal windows are not shifted; strided ones repeat windows).
  bool wrap_borders() const { return !causal && stride == 1; }
  // The group column whose key a slab column holds: wrapped within K·s of the axis, else the
  // nearest one (columns only lanes past the axis end read).
  Index slab_key(Index Lg, Index c) const {
    const Index span = K * slot_step;
    if (wrap_borders() && c < 0 && c + span >= 0) c += span;
    if (wrap_borders() && c >= Lg && c - span < Lg) c -= span;
    return std::min(std::max<Index>(c, 0), Lg - 1);
  }

  // The tile of group g whose lanes are the group's columns first .. first + W - 1.
  NaTile tile(Index g, Index first) const {
    NaTile t;
    const Index Lg = group_length(g);
    t.group = g, t.first = first, t.count = std::min(W, Lg - first);
    const Index left = causal ? K - 1 : K / 2, right = causal ? 0 : K / 2 + K % 2 - 1;
    if (stride == 1 && first >= left * slot_step && (causal || first + t.count - 1 <= Lg - 1 - right * slot_step)) {
      // Inside the axis: every lane's window is centred (or ends at the query): a_i = a_0 + i.
      t.a_min = first - left * slot_step, t.a_max = t.a_min + W - 1;
      for (Index i = 0; i < W; ++i)
        t.a[i] = t.a_min + i, t.col[i] = std::int32_t(i), t.rpb_first[i] = (K - 1) - left;
      return t;
    }
    t.a_max = std::numeric_limits<Index>::min();
    t.a_min = std::numeric_limits<Index>::max();
    for (Index i = 0; i < W; ++i) {
      const Index lane = std::min(i, t.count - 1);  // lanes past the axis end repeat the last one
      const AxisWindow w = neighborhood_axis_window(g + col_step * (first + lane), L, K, dil, stride, causal);
      const Index lo = (w.first - g) / col_step, hi = lo + (w.count - 1) * slot_step;
      t.a[i] = hi - (K - 1) * slot_step;  // slot j: column a + j·s; columns before lo are outside the window
      t.skip[i] = float((lo - t.a[i]) / slot_step);
      t.masked = t.masked || lo > t.a[i];
      t.rpb_first[i] = w.rpb_first;
      t.a_min = std::min(t.a_min, t.a[i]), t.a_max = std::max(t.a_max, t.a[i]);
    }
    bool shifted = true;
    for (Index i = 0; i < t.count; ++i) shifted = shifted && t.a[i] == t.a[0] + i;
    if (!shifted && wrap_borders() && wrapped_windows_match(t, Lg)) {
      const Index a0 = first - (K / 2) * slot_step;
      for (Index i = 0; i < W; ++i) t.lo[i] = t.a[i], t.a[i] = a0 + i, t.col[i] = std::int32_t(i);
      for (Index i = 0; i < t.count; ++i) t.rot[i] = std::int32_t((slab_key(Lg, t.a[i]) - t.lo[i]) / slot_step);
      t.a_min = a0, t.a_max = a0 + W - 1, t.wrapped = true;
      return t;
    }
    if (shifted) {
      for (Index i = 0; i < W; ++i) t.a[i] = t.a[0] + i;  // lanes past the axis end read columns nobody uses
      t.a_min = t.a[0], t.a_max = t.a[0] + W - 1;
    }
    for (Index i = 0; i < W; ++i) t.col[i] = std::int32_t(t.a[i] - t.a_min);
    const int widest_chunk = *std::max_element(chunk.begin(), chunk.end());
    if (!shifted)
      t.keys = permute && t.a_max - t.a_min + (widest_chunk - 1) * slot_step + 1 <= 2 * W ? NaTile::Keys::permuted
                                                                                   : NaTile::Keys::gathered;
    return t;
  }

  // Whether every lane of t (windows from t.a, non-causal: full) sees exactly its window through
  // the wrapped columns a_0 + i + j·s, a_0 = first - (K/2)·s (the centred start of lane 0).
  bool wrapped_windows_match(const NaTile& t, Index Lg) const {
    const Index s = slot_step, a0 = t.first - (K / 2) * s;
    std::vector<char> seen(static_cast<std::size_t>(K));
    for (Index i = 0; i < t.count; ++i) {
      std::fill(seen.begin(), seen.end(), 0);
      for (Index j = 0; j < K; ++j) {
        const Index c = a0 + i + j * s, off = slab_key(Lg, c) - t.a[i], m = off / s;
        if (c + K * s < 0 || c - K * s >= Lg || off % s != 0 || m < 0 || m >= K || seen[std::size_t(m)])
          return false;
        seen[std::size_t(m)] = 1;
      }
    }
    return true;
  }

  // One past the last key column the lanes inside the axis of tile t read (their slots' a + j·d).
  Index read_end_column(const NaTile& t) const {
    Index end = std::numeric_limits<Index>::min();
    for (Index i = 0; i < t.count; ++i) end = std::max(end, t.a[i] + (K - 1) * slot_step + 1);
    return end;
  }

  // One past the last key column the micro-kernels read for tile t: a + j·d for every lane and
  // slot; permuted tiles load two vectors from each chunk start.
  Index end_column(const NaTile& t) const {
    Index end = t.a_max + (K - 1) * slot_step + 1;
    if (t.keys == NaTile::Keys::permuted) end = std::max(end, t.a_min + (K - chunk.back()) * slot_step + 2 * W);
    return end;
  }
};

// The outer coordinates (axes 0 .. R-2) of a flat query row.
template <int R>
std::array<Index, R> na_row_coords(const NaPlan<R>& plan, Index row) {
  std::array<Index, R> c{};
  for (int a = R - 2; a >= 0; --a) c[std::size_t(a)] = row % plan.extent[std::size_t(a)], row /= plan.extent[std::size_t(a)];
  return c;
}

// Lanes per block: 8 × 2 vectors of accumulators on AVX-512 (32 registers), 4 × 2 elsewhere (16);
// with a lane step LS, the lanes of one residue mod LS (at most W / LS).
template <class Arch, int LS = 1>
constexpr int kNaValueLanes = std::min(simd::lanes<Arch> >= 16 ? 8 : 4, int(simd::lanes<Arch>) / LS);

// The lane step of a tile's na_av_rows: its slot step where its lanes' windows are shifted copies
// and the step is 1, 2 or 4 (at most W); else 0: the weighted sum with the queries in the lanes.
template <class Arch>
int na_value_step(NaTile::Keys keys, Index slot_step) {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  if (keys != NaTile::Keys::shifted) return 0;
  return slot_step == 1 || ((slot_step == 2 || slot_step == 4) && slot_step <= W) ? int(slot_step) : 0;
}

// Tiles per run along the last axis: 1-D, 256 queries (the slabs of every kv head stay in L2);
// 2-D / 3-D, up to 1024 queries, so that the FIFO of row slabs stays bounded on wide images.
constexpr Index kNaTilesPerRun1d = 16, kNaTilesPerRun = 64;

// The bytes of q, k, v and out.
inline double na_tensor_bytes(Index B, Index tokens, Index H, Index Hkv, Index P, Index Pv) {
  return double(B * tokens) * double((H + Hkv) * (P + Pv)) * sizeof(float);
}

template <int R, class Arch>
NaPlan<R> na_make_plan(Index B, Index H, Index Hkv, Index P, Index Pv, const std::array<Index, R>& extent,
                       const NeighborhoodParams<R>& params, float scale, Index threads) {
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  NaPlan<R> plan;
  plan.B = B, plan.H = H, plan.Hkv = Hkv, plan.P = P, plan.Pv = Pv, plan.extent = extent, plan.params = params;
  plan.tokens = 1;
  for (int a = 0; a < R; ++a) plan.tokens *= extent[std::size_t(a)];
  plan.q_scale = scale * simd::kLog2e;
  const std::size_t last = std::size_t(R - 1);
  plan.L = extent[last], plan.K = params.kernel_size[last], plan.dil = params.dilation[last], plan.W = W;
  plan.stride = params.stride[last], plan.causal = params.causal[last], plan.permute = simd::is_avx512<Arch>;
  {
    const Index n = (plan.K + kNaMaxSlots - 1) / kNaMaxSlots;
    for (Index c = 0; c < n; ++c) plan.chunk.push_back(int((plan.K * (c + 1)) / n - (plan.K * c) / n));
  }
  // 1-D: whether the tensors outgrow half the L3 the core shares (see stream_out below).
  const bool streams = R == 1 && na_tensor_bytes(B, plan.tokens, H, Hkv, P, Pv) > 0.5 * double(l3_cache_bytes());
  // Columns: in position order when the dilation groups would fill clearly fewer lanes than all
  // queries together (groups short against W: more than 1.2x the lanes). Against in-group order
  // (in-process alternation on the Zen 5 VM): 28x28 K 7 dilation 4 (groups of 7) 0.56 of the time,
  // 14x14 dilation 2 0.56, 28x28 K 7 dilation 3 (1.5x the lanes) 0.88, 56x56 K 7 dilation 3 / 6
  // 0.97 / 0.89, K 11 dilation 5 (1.25x) 0.89; 1-D L 200 K 9 / 13 dilation 8 (1.23x) 0.94-0.96, K 7
  // dilation 12 (1.85x) 1.03. Where both fill the same lanes (56x56 dilation 2 / 4), position order
  // measured 1.03-1.05 (each tile's slots span 16 + 6·d columns instead of 22), and where the groups
  // are long, so that only each group's last tile is partial (1-D: L 4096 K 33 dilation 5 / 12, K 13
  // dilation 5, K 65 dilation 3, K 7 dilation 12, K 9 dilation 40; L 200-2000 K 33 dilation 5, L
  // 520-2000 K 7 dilation 12: 1.02-1.15x the lanes), 1.27-1.75x the time (L 65536 K 33 dilation 5
  // / K 65 dilation 3 / K 13 dilation 12 1.28 / 1.42 / 1.03): its wider slabs and, for slot steps
  // other than 1, 2 and 4, the weighted sum over transposed values (see na_value_step). The rule was
  // that of any lane gain, under which a 1-D dilation that left one group's last tile partial took
  // position order.
  {
    const auto lanes_used = [&](Index groups, Index col_step) {
      Index tiles = 0;
      for (Index g = 0; g < groups; ++g) tiles += ((plan.L - g + col_step - 1) / col_step + W - 1) / W;
      return double(plan.L) / double(tiles * W);
    };
    // 1-D also takes position order where the tiles' windows stay narrow: (K - 1)·dilation at most
    // 128 keys past a tile when its tensors stream from memory (see stream_out below), else at most
    // 48 and only for dilation 2 or 4, whose weighted sum then still reads the value rows in place
    // (na_value_step). Each
    // tensor is then one run of consecutive token rows, prefetched line by line from the qk
    // micro-kernels (NaLinePrefetch), where a dilation group reads every d-th row with the
    // prefetches in bursts. In-process alternation on the Zen 5 VM, in-group -> position order:
    // L 65536 K 7 dilation 2 / 4 / 8 16.0 / 19.3 / 25.2 ms -> 7.6 / 12.3 / 15.8, K 13 18.4 / 21.2 /
    // 26.9 -> 12.8 / 12.2 / 18.2, K 33 dilation 2 / 4 25.0 / 27.6 -> 16.4 / 16.9, K 65 dilation 2
    // 30.0 -> 25.8, but K 33 dilation 8 34.8 -> 37.0 and K 65 dilation 4 33.8 -> 35.0; L 4096 K 7
    // dilation 2 / 4 0.44 / 0.49 ms -> 0.38 / 0.47, K 13 dilation 4 0.61 -> 0.57, but K 7 dilation 8
    // 0.555 -> 0.58, K 33 dilation 2 0.88 -> 0.91 (each tile's slots then span 16 + (K - 1)·d keys
    // instead of 16 + K - 1). A warm loop of L 4096 calls (64-byte-aligned tensors, in-process
    // alternation, a later session): dilation 2 and 4 0.99-1.06 (K 7, K 13), the others 1.05-1.29
    // (K 7 dilation 3 / 5 / 6 / 7 / 8 1.27 / 1.26 / 1.15 / 1.12 / 1.29, K 13 dilation 3 1.17, K 9
    // dilation 6 1.09, K 5 dilation 12 1.05, K 4 dilation 16 1.26): those keep their groups unless
    // the tensors stream.
    const bool values_in_place = na_value_step<Arch>(NaTile::Keys::shifted, plan.dil) != 0;
    const bool narrow_1d = R == 1 && (streams ? (plan.K - 1) * plan.dil <= 128
                                              : values_in_place && (plan.K - 1) * plan.dil <= 48);
    const bool positions = plan.dil > 1 && (narrow_1d || lanes_used(1, 1) > 1.2 * lanes_used(plan.dil, plan.dil));
    plan.groups = positions ? 1 : plan.dil;
    plan.col_step = positions ? 1 : plan.dil;
    plan.slot_step = positions ? plan.dil : 1;
  }
  // Runs of tiles; window starts grow with the query, so a run's columns start at its first tile's.
  const Index run_tiles = R == 1 ? kNaTilesPerRun1d : kNaTilesPerRun;
  for (Index g = 0; g < plan.groups; ++g) {
    const Index Lg = plan.group_length(g);
    for (Index first = 0; first < Lg; first += run_tiles * W) {
      NaTileRun run{g, first, 0, Index(plan.tiles.size()), 0, 0, 0};
      Index end = 0, read_end = 0;
      for (Index f = first; f < Lg && run.tiles < run_tiles; f += W, ++run.tiles) {
        const NaTile& t = plan.tiles.emplace_back(plan.tile(g, f));
        if (f == first) run.c_lo = t.a_min;
        run.c_lo = std::min(run.c_lo, t.a_min), end = std::max(end, plan.end_column(t));
        read_end = std::max(read_end, plan.read_end_column(t));
        plan.any_gathered = plan.any_gathered || t.keys == NaTile::Keys::gathered;
        const bool in_lanes = na_value_step<Arch>(t.keys, plan.slot_step) == 0;
        plan.value_slabs = plan.value_slabs || (Pv > 0 && in_lanes);
        plan.value_rows = plan.value_rows || (Pv > 0 && !in_lanes);
      }
      run.width = (end - run.c_lo + W - 1) / W * W;
      run.read_end = read_end - run.c_lo;
      plan.max_width = std::max(plan.max_width, run.width);
      plan.runs.push_back(run);
    }
  }
  // 1-D dilation groups: the runs taken span by span (run i of every group, then run i + 1), not
  // group by group, so that the d passes over a stretch of the tensors follow each other while its
  // pages and the lines the hardware fetched beside each group's rows are still near. In-process
  // alternation on the Zen 5 VM (L 65536, `malloc`'s buffers, medians of 8 rounds): K 65 dilation 4
  // 30.9 ms -> 29.3 (28.3 with the bursts' streamed outputs no longer prefetched, see run_tile;
  // 30.0 with that alone), K 33 dilation 8 31.6 -> 28.9 (27.3; 30.0); K 13 dilation 8, K 33
  // dilation 3 and K 9 dilation 40 within 3%; L 4096 the same. Each item's outputs are computed as
  // before, so the results do not change.
  if (R == 1 && plan.groups > 1)
    std::stable_sort(plan.runs.begin(), plan.runs.end(),
                     [](const NaTileRun& x, const NaTileRun& y) { return x.first < y.first; });
  // Blocks of up to 3 query rows consecutive in their dilation group along axis R-2.
  for (int a = 0; a + 1 < R; ++a) plan.rows *= extent[std::size_t(a)];
  if constexpr (R == 1) {
    plan.blocks.push_back({1, 0, 0, 0});
  } else {
    const Index Lb = extent[std::size_t(R - 2)], db = params.dilation[std::size_t(R - 2)];
    for (Index prefix = 0; prefix < plan.rows / Lb; ++prefix)
      for (Index g = 0; g < db; ++g)
        for (Index u = g; u < Lb; u += kNaMaxRows * db) {
          std::array<Index, kNaMaxRows + 1> blk{};
          for (Index r = u; r < Lb && blk[0] < kNaMaxRows; r += db) blk[std::size_t(++blk[0])] = prefix * Lb + r;
          plan.blocks.push_back(blk);
        }
  }
  plan.max_slots = 1;
  for (int a = 0; a < R; ++a) plan.max_slots *= params.kernel_size[std::size_t(a)];
  plan.max_union = 1;
  for (int a = 0; a + 1 < R; ++a) plan.max_union *= params.kernel_size[std::size_t(a)] + (a == R - 2 ? kNaMaxRows - 1 : 0);
  // Ring capacity (per kv head). 1-D: its one row. 2-D: one block's union: the next block along
  // axis 0 claims as many new rows as it advances, and the oldest entries it evicts hold the rows
  // above its union (an entry reclaimed soon after its last read is still in L2: against twice the
  // union, 0.96-0.98 of the time at 56x56 and 28x28, K 7). 3-D: the union spans K0 planes, whose
  // first planes' rows would be evicted while the later planes are claimed: the previous union too.
  plan.ring_entries = R == 1 ? 1 : R == 2 ? plan.max_union : 2 * plan.max_union + 2;
  // 2-D, every kv head per item when one image's q, k, v and out do not fit L2 (so that a pass per
  // head would fetch them from further out, each time a head's 2·P floats of every token row) and
  // the rings of all kv heads fit 3/8 of it (with the block's query and output rows and the
  // prefetched key rows beside them): each token row is then read whole within one block, which the
  // hardware prefetchers follow. Measured against one head per item (in-process alternation, H 4,
  // P 32, this machine's 2 MB L2): 56x56 K 7 0.94-0.95 of the time (dilation 2: 0.96), K 9 1.00;
  // forced where this rule declines: 56x56 K 11 and 13 (rings of 0.8-1 MB) 1.01-1.05, 28x28 K 7
  // (1.6 MB of tensors) 1.02-1.03.
  if constexpr (R == 2) {
    const double l2 = double(l2_cache_bytes());
    // The rings hold keys; the union's value rows, read in place, take as much L2 again (Pv).
    const double ring_bytes = double(plan.ring_entries) * double(P + Pv) * double(plan.max_width) * sizeof(float);
    const double image_bytes = double(plan.tokens) * double((H + Hkv) * (P + Pv)) * sizeof(float);
    // Not when the blocks alone would leave a thread fewer than 4 items (B · runs · blocks < 4 ·
    // threads, as block_runs below aims): the kv heads then split the items instead, for balance.
    // On a 16-core Sapphire Rapids VM, 56x56 K 7 (19 blocks), medians of 1000 calls in two runs: 8
    // threads 0.41-0.42 ms against 0.49-0.51 with every head per item, 16 threads 0.33-0.39 against
    // 0.41 (1, 2 and 4 threads keep every head per item).
    const Index items_inside = B * Index(plan.runs.size()) * Index(plan.blocks.size());
    plan.heads_inside = Hkv > 1 && image_bytes > l2 && double(Hkv) * ring_bytes <= 0.375 * l2 && items_inside >= 4 * threads;
  }
  plan.cache_entries = plan.ring_entries * (plan.heads_inside ? Hkv : 1);
  // 1-D outputs of calls whose tensors outgrow half the L3 the core shares are written with
  // non-temporal stores: no read for ownership of each line (a fifth of the traffic of a one-pass
  // kernel over q, k, v and out), and no eviction of the rows still to be read; the outputs would
  // not stay cached for whatever reads them next anyway. Smaller calls keep plain stores. On the
  // 2-vCPU Zen 5 VM (32 MiB L3; in-process alternation, rows prefetched from the micro-kernels
  // either way): L 65536 K 7 (128 MiB of tensors) 7.7-9.6 ms against 11.0-12.9 with plain stores
  // (the out rows then prefetched for writing); L 16384 (32 MiB) 2.21-2.33 ms against 2.95-2.99
  // (medians of 24 rounds, order rotated; the previous rule, outputs over 8 L2s, left it plain).
  // L 8192 (16 MiB) and L 4096 stay plain: streamed, they measured 0.8 and 0.87 of the time in a
  // loop of calls, but their outputs fit the L3 where the next op would read them (not measured).
  // On the 16-core Xeon VM (300 MiB L3 in sysfs) even L 65536 stays plain: there 1 thread measured
  // 13.8-14.7 ms against 12.3-16.0 streamed, 16 threads 1.66-2.07 against 3.60-3.97.
  plan.stream_out = streams;
  // Work items: (batch, tile run, kv head unless heads_inside, a run of blocks); block runs only
  // split when the other dimensions do not give every thread a few items (4), and their sizes
  // differ by at most one block, so that there are as many as asked (runs of one rounded-up size
  // would make 19 blocks 10 runs of 2 where 16 were asked for: 16 threads 0.79 of the balance).
  // With both rules, on the 16-core VM, 56x56 K 7 (medians of 1000 calls, three alternations with
  // the previous rules): 4 threads 0.57-0.69 ms against 0.74-0.90, 8 threads 0.39-0.40 against
  // 0.45-0.50, 16 threads 0.25-0.26 against 0.35-0.36.
  const Index columns = B * (plan.heads_inside ? 1 : Hkv) * Index(plan.runs.size());
  plan.block_runs = std::max<Index>(1, std::min<Index>(Index(plan.blocks.size()), (4 * threads + columns - 1) / columns));
  return plan;
}

template <int R>
Index na_items(const NaPlan<R>& plan) {
  return plan.B * (plan.heads_inside ? 1 : plan.Hkv) * Index(plan.runs.size()) * plan.block_runs;
}

// The micro-kernels with the queries in the lanes. Rows i < I of the block, slots j < J of one chunk:
//   qk: s[i][j·W ..] = Σ_p qt[i][p·W ..] ⊙ key(p, j)         (one accumulator per (i, j))
//   av: o[i][p·W ..] += Σ_j prob[i][j·W ..] ⊙ value(p, j)     (p over Pv; tiles whose weighted
//       sum does not take na_av_rows, see na_value_step)
// key / value(p, j) = the W lanes' keys of slot j: slab[p·ldp + j·ldj ..] (shifted or gathered
// slabs), or the permute of slab[p·ldp ..][0 .. 2W) by col + j (permuted, AVX-512).
//
// Shifted slabs load slot j at column a + j: all but one of a row's J loads straddle two cache
// lines, and such a load costs two of the load ports' slots. With I = 3 rows each key feeds 3 FMAs
// and the FMA ports stay the limit; with I <= 2 (the block's first and last key rows, and every row
// in 1-D) the split loads are: there (AVX-512) the first kNaHybridSlots slots come from a permute of
// the two aligned vectors around them instead (the permute takes an FMA port slot, not a load
// slot). Measured against all split loads (in-process alternation): 1-D L 4096 K 7 0.86-0.89 of
// the time, K 33 0.78-0.82; 2-D 56x56 K 7 0.96-0.97 (its I = 3 rows gain nothing from it).
// Where the chunk starts on the 64-byte boundary (misalign 0: every chunk of K <= 8 in 1-D and in
// 2-D / 3-D at dilation 1, their tiles being W columns apart) slot j is VALIGND(hi, lo, j), whose
// shift is an immediate: on Zen 5 it costs less than the permute. In isolation (slab in L1, Zen 5
// VM, J 7): I = 1 with every slot from the pair 5.4-5.7 vector FMAs per ns against 3.7-4.0 with
// the permutes (3.3 with split loads), I = 2 with the first 4 slots 7.5-7.6 against 6.8; I = 3
// 7.5 either way (the FMA peak is 7.9).
constexpr int kNaHybridSlots = 4;

struct NaMicro {
  const float* in[kNaMaxRows];  // qk: Qt_i [depth, W]; av: the chunk's probabilities [J, W]
  float* out[kNaMaxRows];       // qk: the chunk's logits [J, W]; av: Ot_i [depth, W]
  const float* slab;            // the chunk's first key column
  Index ldp, ldj, depth;
  const std::int32_t* col;      // permuted: the tile's lane offsets
  int misalign;                 // slab's offset in floats from the 64-byte boundary below it
  float* max_out[kNaMaxRows];   // qk, optional: per row, the running lane-wise max of the logits [W]
  NaLinePrefetch* prefetch;     // qk, optional: lines to prefetch as it iterates (1-D)
  NaRowPrefetch* row_prefetch;  // qk, optional: the same for a dilation group's rows (1-D, streamed)
};

// Aligned: slab rows start on the 64-byte boundary (misalign 0) and the first NP slots come from
// VALIGND of the pair there instead of permutes.
template <class Arch, bool Permuted, int J, int NP = 0, bool Aligned = false>
struct NaKeyLoader {
  using V = simd::vfloat<Arch>;
#if defined(__AVX512F__)
  __m512i idx[Permuted ? J : NP > 0 ? NP : 1];
#endif
  int misalign = 0;
  explicit NaKeyLoader(const NaMicro& m) : misalign(m.misalign) {
#if defined(__AVX512F__)
    if constexpr (Permuted) {
      const __m512i col = _mm512_load_si512(m.col);
      for (int j = 0; j < J; ++j) idx[j] = _mm512_add_epi32(col, _mm512_set1_epi32(int(j * m.ldj)));
    } else if constexpr (NP > 0 && !Aligned) {
      const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      for (int j = 0; j < NP; ++j) idx[j] = _mm512_add_epi32(lane, _mm512_set1_epi32(m.misalign + j));
    }
#else
    (void)m;
#endif
  }
  template <class F>
  TOKENMIX_ALWAYS_INLINE void row(const float* p, Index ldj, F&& use) const {
#if defined(__AVX512F__)
    if constexpr (Permuted) {
      const __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
      for (int j = 0; j < J; ++j) use(j, V(_mm512_permutex2var_ps(lo, idx[j], hi)));
      return;
    } else if constexpr (NP > 0 && Aligned) {  // slots j < NP from the pair at p (misalign 0)
      const __m512i lo = _mm512_castps_si512(_mm512_load_ps(p)), hi = _mm512_castps_si512(_mm512_load_ps(p + 16));
      aligned_slots(lo, hi, use, std::make_integer_sequence<int, NP>{});
      for (int j = NP; j < J; ++j) {
        V k = simd::load<Arch>(p + j);
        simd::in_register<Arch>(k);
        use(j, k);
      }
      return;
    } else if constexpr (NP > 0) {  // slots j < NP from the aligned pair at p - misalign
      const float* pb = p - misalign;
      const __m512 lo = _mm512_load_ps(pb), hi = _mm512_load_ps(pb + 16);
      for (int j = 0; j < NP; ++j) use(j, V(_mm512_permutex2var_ps(lo, idx[j], hi)));
      for (int j = NP; j < J; ++j) {
        V k = simd::load<Arch>(p + j);
        simd::in_register<Arch>(k);
        use(j, k);
      }
      return;
    }
#endif
    for (int j = 0; j < J; ++j) {
      V k = simd::load<Arch>(p + j * ldj);
      simd::in_register<Arch>(k);  // loaded once for the I rows
      use(j, k);
    }
  }

 private:
#if defined(__AVX512F__)
  // use(j, slot j) for the slots js: VALIGND's shift must be an immediate.
  template <class F, int... js>
  static TOKENMIX_ALWAYS_INLINE void aligned_slots(__m512i lo, __m512i hi, F& use, std::integer_sequence<int, js...>) {
    // Slot 0 is lo itself (GCC keeps a VALIGND by 0, an FMA-port slot, unless told).
    (use(js, V(_mm512_castsi512_ps(js == 0 ? lo : _mm512_alignr_epi32(hi, lo, js)))), ...);
  }
#endif
};

// A micro-kernel's register block of accumulators, zeroed.
template <class V, int I, int J>
TOKENMIX_ALWAYS_INLINE void na_zero(V (&acc)[I][J]) {
  for (int i = 0; i < I; ++i)
    for (int j = 0; j < J; ++j) acc[i][j] = V(0.0f);
}

// The call's prefetch list of type Prefetch (NaLinePrefetch or NaRowPrefetch), or null.
template <class Prefetch>
Prefetch* na_prefetch_source(const NaMicro& m) {
  if constexpr (std::is_same_v<Prefetch, NaRowPrefetch>)
    return m.row_prefetch;
  else
    return m.prefetch;
}

// Prefetch: the type of the list the one-row calls take (NaLinePrefetch, NaRowPrefetch): a template
// parameter, so that the contiguous ranges' loop stays the one measured (see NaRowPrefetch).
template <class Arch, bool Permuted, int I, int J, int NP = 0, bool Aligned = false, class Prefetch = NaLinePrefetch>
void na_qk_micro(const NaMicro& m) {
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const NaKeyLoader<Arch, Permuted, J, NP, Aligned> keys(m);
  V acc[I][J];
  na_zero(acc);
  // Locals: stores through the float pointers would otherwise make GCC reload m's fields.
  const float* in[I];
  for (int i = 0; i < I; ++i) in[i] = m.in[i];
  const float* const slab = m.slab;
  const Index ldp = m.ldp, ldj = m.ldj, depth = m.depth;
  // A do-while (depth = P >= 1, which the ops check): with a zero-trip path to merge from, GCC kept
  // a copy of acc on the stack (some 60 extra stores and loads per call; the call alone 3-5% faster
  // without, on slabs in L1 and in L2).
  // One-row calls (every 1-D call) prefetch a later tile's lines as they go (NaLinePrefetch; by
  // value, so that the stores to out cannot alias its state); row blocks (2-D / 3-D) have no trace
  // of it: with it in their loop, 56x56 K 7 took 1.05 ms instead of 0.76 on the Zen 5 VM.
  Prefetch prefetch;
  Prefetch* const source = na_prefetch_source<Prefetch>(m);
  if (I == 1 && source) prefetch = *source;
  Index p = 0;
  do {
    if constexpr (I == 1) prefetch.step(p);
    V q[I];
    for (int i = 0; i < I; ++i) q[i] = simd::load<Arch>(in[i] + p * W);
    // The keys first, then the FMAs: with the FMAs inside the loader's callback GCC kept acc on
    // the stack for I = 1 (every FMA a load and a store: 0.25 of the FMA peak).
    V k[J];
    keys.row(slab + p * ldp, ldj, [&](int j, V kj) { k[j] = kj; });
    for (int j = 0; j < J; ++j)
      for (int i = 0; i < I; ++i) acc[i][j] = simd::fmadd<Arch>(q[i], k[j], acc[i][j]);
  } while (++p < depth);
  if (I == 1 && source) source->taken(depth);
  for (int i = 0; i < I; ++i)
    for (int j = 0; j < J; ++j) simd::store<Arch>(m.out[i] + j * W, acc[i][j]);
  if (m.max_out[0])
    for (int i = 0; i < I; ++i) {
      V mx = simd::load<Arch>(m.max_out[i]);
      for (int j = 0; j < J; ++j) mx = xsimd::max(mx, acc[i][j]);
      simd::store<Arch>(m.max_out[i], mx);
    }
}

template <class Arch, bool Permuted, int I, int J, int NP = 0, bool Aligned = false>
void na_av_micro(const NaMicro& m) {
  using V = simd::vfloat<Arch>;
  constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  const NaKeyLoader<Arch, Permuted, J, NP, Aligned> values(m);
  V w[I][J];
  for (int i = 0; i < I; ++i)
    for (int j = 0; j < J; ++j) w[i][j] = simd::load<Arch>(m.in[i] + j * W);
  float* out[I];  // locals: see na_qk_micro
  for (int i = 0; i < I; ++i) out[i] = m.out[i];
  const float* const slab = m.slab;
  const Index ldp = m.ldp, ldj = m.ldj, depth = m.depth;
  for (Index p = 0; p < depth; ++p) {
    V o[I];
    for (int i = 0; i < I; ++i) o[i] = simd::load<Arch>(out[i] + p * W);
    values.row(slab + p * ldp, ldj, [&](int j, V v) {
      for (int i = 0; i < I; ++i) o[i] = simd::fmadd<Arch>(w[i][j], v, o[i]);
    });
    for (int i = 0; i < I; ++i) simd::store<Arch>(out[i] + p * W, o[i]);
  }
}

template <class Arch, bool Qk, bool Permuted, int I, int NP = 0, bool Aligned = false, class Prefetch = NaLinePrefetch>
void na_micro_j(const NaMicro& m, int J) {
#define TOKENMIX_NA_CASE(JJ)                                                                              \
  case JJ:                                                                                                \
    return Qk ? na_qk_micro<Arch, Permuted, I, JJ, (NP < JJ ? NP : JJ), Aligned, Prefetch>(m)             \
              : na_av_micro<Arch, Permuted, I, JJ, (NP < JJ ? NP : JJ), Aligned>(m);
  switch (J) {
    TOKENMIX_NA_CASE(1)
    TOKENMIX_NA_CASE(2)
    TOKENMIX_NA_CASE(3)
    TOKENMIX_NA_CASE(4)
    TOKENMIX_NA_CASE(5)
    TOKENMIX_NA_CASE(6)
    TOKENMIX_NA_CASE(7)
    default:
      return Qk ? na_qk_micro<Arch, Permuted, I, 8, NP, Aligned, Prefetch>(m)
                : na_av_micro<Arch, Permuted, I, 8, NP, Aligned>(m);
  }
#undef TOKENMIX_NA_CASE
}

// Whether a shifted call takes its first slots from permutes (see kNaHybridSlots): rows I <= 2,
// unit slot stride, and slots 0 .. NP-1 inside the aligned pair at slab - misalign. J >= 2 keeps
// a used column in the pair's upper vector, so that both aligned loads stay inside the slab.
inline bool na_hybrid_keys(const NaMicro& m, int I, int J) {
  return I <= 2 && J >= 2 && m.ldj == 1 && m.misalign + std::min(J, kNaHybridSlots) <= 17;
}

// Prefetch: the type of the one-row calls' prefetch list (see na_micro).
template <class Arch, bool Qk, class Prefetch>
void na_micro_rows(const NaMicro& m, int I, int J, bool permuted) {
  if constexpr (simd::is_avx512<Arch>) {
    if (permuted) {
      if (I == 1) return na_micro_j<Arch, Qk, true, 1, 0, false, Prefetch>(m, J);
      if (I == 2) return na_micro_j<Arch, Qk, true, 2>(m, J);
      return na_micro_j<Arch, Qk, true, 3>(m, J);
    }
    // Logits only: the weighted sums over value slabs (na_av_micro) take tiles whose slots are not
    // unit-stride shifts (na_value_step 0), which never qualify.
    if constexpr (Qk) {
      if (na_hybrid_keys(m, I, J)) {
        if (m.misalign == 0)  // one row: every slot from the pair; two: the first kNaHybridSlots
          return I == 1 ? na_micro_j<Arch, Qk, false, 1, kNaMaxSlots, true, Prefetch>(m, J)
                        : na_micro_j<Arch, Qk, false, 2, kNaHybridSlots, true>(m, J);
        return I == 1 ? na_micro_j<Arch, Qk, false, 1, kNaHybridSlots, false, Prefetch>(m, J)
                      : na_micro_j<Arch, Qk, false, 2, kNaHybridSlots>(m, J);
      }
    }
  }
  if (I == 1) return na_micro_j<Arch, Qk, false, 1, 0, false, Prefetch>(m, J);
  if (I == 2) return na_micro_j<Arch, Qk, false, 2>(m, J);
  return na_micro_j<Arch, Qk, false, 3>(m, J);
}

// The micro-kernel for I rows and J slots. One-row logits calls with a dilation group's row list
// (NaMicro::row_prefetch) take na_qk_micro's NaRowPrefetch instances; every other call the rest.
template <class Arch, bool Qk>
void na_micro(const NaMicro& m, int I, int J, bool permuted) {
  if constexpr (Qk)
    if (I == 1 && m.row_prefetch) return na_micro_rows<Arch, Qk, NaRowPrefetch>(m, I, J, permuted);
  return na_micro_rows<Arch, Qk, NaLinePrefetch>(m, I, J, permuted);
}

// The logits of half tiles (at most W/2 queries, AVX-512; NeighborhoodKernel::pairs_tile): two query
// rows of the block share a vector, the first's queries in the lower half and the second's in the
// upper. Both see a key row at the same columns, so slot j's keys are one 256-bit broadcast load
// (no shuffle), and a key row seen by three rows takes two packed rows instead of three.
//   s[x][h][j·W ..] = both halves set to half h of Σ_p qt[x][p·W ..] ⊙ key(p, j), key(p, j) =
//   slab[p·ldp + j ..][0 .. W/2) in both halves
struct NaPairMicro {
  const float* in[2] = {};           // packed Qt [depth, W]
  float* out[2][2] = {};             // [packed row][half]: that half's row's logits of the chunk [J, W], or null
  float* max_out[2][2] = {};         // the same rows' running lane-wise max of the logits [W], or null
  const float* slab = nullptr;       // the chunk's first key column (lane 0's slot 0)
  Index ldp = 0, depth = 0;
};

template <class Arch, int I, int J>
void na_qk_pairs(const NaPairMicro& m) {
#if defined(__AVX512F__)
  if constexpr (simd::is_avx512<Arch>) {
    using V = simd::vfloat<Arch>;
    constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
    V acc[I][J];
    na_zero(acc);
    const float* in[I];  // locals: see na_qk_micro
    for (int i = 0; i < I; ++i) in[i] = m.in[i];
    const float* const slab = m.slab;
    const Index ldp = m.ldp, depth = m.depth;
    Index p = 0;
    do {  // depth = P >= 1 (see na_qk_micro)
      V q[I], k[J];
      for (int i = 0; i < I; ++i) q[i] = simd::load<Arch>(in[i] + p * W);
      // vbroadcastf64x4 (AVX-512F; f32x8 would need DQ): the same 256 bits in both halves.
      for (int j = 0; j < J; ++j)
        k[j] = V(_mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(slab + p * ldp + j)))));
      for (int j = 0; j < J; ++j)
        for (int i = 0; i < I; ++i) acc[i][j] = simd::fmadd<Arch>(q[i], k[j], acc[i][j]);
    } while (++p < depth);
    for (int i = 0; i < I; ++i)
      for (int h = 0; h < 2; ++h) {
        float* const out = m.out[i][h];
        if (!out) continue;
        // Half h in both halves: the lanes past the tile's queries hold finite copies, as elsewhere.
        V half[J];
        for (int j = 0; j < J; ++j) {
          const __m512 a = acc[i][j];
          half[j] = V(h == 0 ? _mm512_shuffle_f32x4(a, a, 0x44) : _mm512_shuffle_f32x4(a, a, 0xEE));
        }
        for (int j = 0; j < J; ++j) simd::store<Arch>(out + j * W, half[j]);
        if (float* const max_out = m.max_out[i][h]) {
          V mx = simd::load<Arch>(max_out);
          for (int j = 0; j < J; ++j) mx = xsimd::max(mx, half[j]);
          simd::store<Arch>(max_out, mx);
        }
      }
    return;
  }
#endif
  (void)m;  // other archs never take pairs (pairs_tile)
}

template <class Arch, int I>
void na_qk_pairs_j(const NaPairMicro& m, int J) {
  switch (J) {
    case 1: return na_qk_pairs<Arch, I, 1>(m);
    case 2: return na_qk_pairs<Arch, I, 2>(m);
    case 3: return na_qk_pairs<Arch, I, 3>(m);
    case 4: return na_qk_pairs<Arch, I, 4>(m);
    case 5: return na_qk_pairs<Arch, I, 5>(m);
    case 6: return na_qk_pairs<Arch, I, 6>(m);
    case 7: return na_qk_pairs<Arch, I, 7>(m);
    default: return na_qk_pairs<Arch, I, 8>(m);
  }
}

// The weighted sum of the values, with the values' channels in the lanes: for the LB query lanes
// of a lane block (tile lanes lane0 + l·LS, l < LB) and NV vectors of channels,
//   acc[l][..] += Σ_entries Σ_j<J  w[j·W + l·LS] · rows[cols[(l + j)·LS] ..]
// An entry is one key row of a query row's window and one chunk of J slots: w its weights (slot j
// of tile lane i at w[j·W + i], the layout of S), rows the key row's value rows for the kv head, cols
// the value-row offsets of the run's columns from the block's first lane's slot 0. In a shifted
// tile with slot step s = LS, lane lane0 + l·s's slot j is column a_min + lane0 + (l + j)·s, so each
// value row is loaded once for the lanes that see it (LB + J - 1 rows for LB·J weights;
// position-order tiles of dilation s take lane blocks of one residue mod s). Each weight is one
// broadcast load; the values are read in place (no transposed copy of V, no transposed output):
// against the weighted sum with the queries in the lanes over a transposed V slab (in-process
// alternation): 2-D 56x56 K 7 0.83-0.85 of the op's time (dilation 2 / 4 0.86-0.90 / 0.80-0.86),
// 28x28 0.86-0.88 (dilation 4, position order: 0.89-0.90), 56x56 K 13 0.92, 3-D 8x28x28 0.86-0.88,
// 1-D L 4096 0.85-0.87, L 65536 0.91-0.92; the split av with Pv 16 (one broadcast per FMA):
// 56x56 K 7 0.87-0.89, K 11 0.95-0.96 (dilation 2: 1.04-1.05), 14x14 K 7 dilation 2 0.96.
// Where the lanes' windows are not shifted copies (strided axes, causal borders) or the slot step
// is another (position-order tiles of dilation 3, 5, ..: lane blocks of one residue would leave
// lanes empty; A2Mamba's 56x56 K 11 dilation 5 measured 1.14-1.27x the time that way), the
// weighted sum keeps the queries in the lanes (na_av_micro over a transposed V slab).
struct NaValueEntry {
  const float* w;  // the weights of lane 0, slot j0 (slot j of tile lane i at w[(j - j0)·W + i])
  Index row;       // the key row's first value row, in floats from v_row0
  Index j0;        // the chunk's first slot along the last axis
};

// One lane block of a tile for every query row of a block: per row its entries (those of the first
// chunk size first), and where its lanes' weighted sums go, times what.
struct NaValueRows {
  struct Row {
    const NaValueEntry* entries = nullptr;
    int n = 0, n_first = 0;
    float* out = nullptr;          // lane l's first channel at out + l·LS·out_stride
    const float* scale = nullptr;  // lane l's factor at scale[l·LS]
  };
  Row rows[kNaMaxRows];
  int n_rows = 0;
  const float* v_row0 = nullptr;  // v + batch, kv head and first channel
  const Index* cols = nullptr;    // column c of the block's lanes at cols[c·LS]
  Index lane0 = 0;
  Index out_stride = 0;           // floats between the output rows of consecutive tile lanes
  int lanes = 0;                  // the block's lanes inside the tile (<= LB)
  bool stream = false;            // non-temporal stores (where 64-byte aligned)
};

// acc += the entries' products (see above), J slots each.
template <class Arch, int LS, int LB, int J, int NV>
TOKENMIX_ALWAYS_INLINE void na_av_entries(const NaValueRows& m, const NaValueEntry* entries, int n,
                                          simd::vfloat<Arch> (&acc)[LB][NV]) {
  using V = simd::vfloat<Arch>;
  constexpr int W = static_cast<int>(simd::lanes<Arch>);
  for (int e = 0; e < n; ++e) {
    const NaValueEntry& entry = entries[e];
    const float* w = entry.w + m.lane0;
    // Opaque to the optimiser: else GCC hoists the LB·J offsets lane0 + (c - l)·W + l out of the
    // entry loop and spills them (and acc) for want of registers, instead of using displacements.
    asm("" : "+r"(w));
    const float* const rows = m.v_row0 + entry.row;
    const Index* const cols = m.cols + entry.j0 * LS;
#pragma GCC unroll 16
    for (int c = 0; c < LB + J - 1; ++c) {
      V v[NV];
      // The column's value row as an opaque pointer: its second vector then takes a displacement
      // instead of GCC's second index computation (16 fewer instructions an entry of 112 FMAs).
      const float* value_row = rows + cols[c * LS];
      asm("" : "+r"(value_row));
      for (int x = 0; x < NV; ++x) v[x] = simd::load<Arch>(value_row + x * W);
#pragma GCC unroll 8
      for (int l = 0; l < LB; ++l) {
        if (c - l < 0 || c - l >= J) continue;
        const V wl(w[(c - l) * W + l * LS]);
        for (int x = 0; x < NV; ++x) simd::fmadd_to<Arch>(acc[l][x], wl, v[x]);
      }
    }
  }
}

// Every row of the block in one call, its sums scaled and written to out from the registers, both
// chunk sizes (J1 slots, then J2 = J1 + 1 where K splits into two sizes) in the one call. Against a
// call per row and chunk size through a buffer, whose setup, dispatch and round trip cost ~100
// cycles a call (in-process alternation on the Zen 5 VM, minima, order rotated; bitwise the same
// outputs): 2-D 56x56 K 7 0.96-0.97 of the time, K 11 / 13 0.96 / 0.98, dilation 2 / 4 0.96,
// 28x28 0.93; 3-D 8x28x28 0.98; 1-D L 4096 0.91, L 65536 0.95.
template <class Arch, int LS, int LB, int J1, int J2, int NV>
void na_av_rows(const NaValueRows& m) {
  using V = simd::vfloat<Arch>;
  constexpr int W = static_cast<int>(simd::lanes<Arch>);
  for (int i = 0; i < m.n_rows; ++i) {
    const NaValueRows::Row& row = m.rows[i];
    V acc[LB][NV];
    na_zero(acc);
    na_av_entries<Arch, LS, LB, J1, NV>(m, row.entries, row.n_first, acc);
    if constexpr (J2 != J1) na_av_entries<Arch, LS, LB, J2, NV>(m, row.entries + row.n_first, row.n - row.n_first, acc);
    for (int l = 0; l < LB; ++l) {
      if (l >= m.lanes) break;
      const V f(row.scale[l * LS]);
      float* const dst = row.out + l * LS * m.out_stride;
      for (int x = 0; x < NV; ++x) {
        if (m.stream && reinterpret_cast<std::uintptr_t>(dst + x * W) % sizeof(V) == 0)
          simd::store_stream<Arch>(dst + x * W, acc[l][x] * f);
        else
          simd::store<Arch>(dst + x * W, acc[l][x] * f);
      }
    }
  }
}

template <class Arch, int LS, int NV, int J1>
void na_av_rows_j2(const NaValueRows& m, int J2) {
  constexpr int LB = kNaValueLanes<Arch, LS>;
  if constexpr (J1 < kNaMaxSlots)
    if (J2 != J1) return na_av_rows<Arch, LS, LB, J1, J1 + 1, NV>(m);
  return na_av_rows<Arch, LS, LB, J1, J1, NV>(m);
}

template <class Arch, int LS, int NV>
void na_av_rows_j(const NaValueRows& m, int J1, int J2) {
  switch (J1) {
    case 1: return na_av_rows_j2<Arch, LS, NV, 1>(m, J2);
    case 2: return na_av_rows_j2<Arch, LS, NV, 2>(m, J2);
    case 3: return na_av_rows_j2<Arch, LS, NV, 3>(m, J2);
    case 4: return na_av_rows_j2<Arch, LS, NV, 4>(m, J2);
    case 5: return na_av_rows_j2<Arch, LS, NV, 5>(m, J2);
    case 6: return na_av_rows_j2<Arch, LS, NV, 6>(m, J2);
    case 7: return na_av_rows_j2<Arch, LS, NV, 7>(m, J2);
    default: return na_av_rows_j2<Arch, LS, NV, 8>(m, J2);
  }
}

template <class Arch, int LS>
void na_av_nv(const NaValueRows& m, int J1, int J2, int nv) {
  return nv == 2 ? na_av_rows_j<Arch, LS, 2>(m, J1, J2) : na_av_rows_j<Arch, LS, 1>(m, J1, J2);
}

// The weighted sums of one lane block; J1, J2: the chunk sizes (pl.chunk's first and last: equal, or
// J2 = J1 + 1).
template <class Arch>
void na_av(const NaValueRows& m, int J1, int J2, int step, int nv) {
  if (step == 4) return na_av_nv<Arch, 4>(m, J1, J2, nv);
  if (step == 2) return na_av_nv<Arch, 2>(m, J1, J2, nv);
  return na_av_nv<Arch, 1>(m, J1, J2, nv);
}

// The pointers of one call and the kernel over a range of work items.
template <int R, class Arch>
struct NeighborhoodKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);

  const NaPlan<R>& plan;
  const float *q, *k, *v, *rpb;  // q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv], rpb [H, ..]
  float *out, *lse;              // out [B, X.., H, Pv], lse [B, X.., H] or nullptr
  NaOutput mode = NaOutput::attention;
  float* logits = nullptr;          // logits, probabilities: [B, X.., H, S_full] (S_full = max_slots; Pv = 0)
  const float* weights = nullptr;   // weighted_sum: [B, X.., H, S_full] (P = 0)

  // Per-thread state: the row-slab cache of the current (batch, kv head, tile run) and the buffers.
  struct Scratch {
    using Buffer = std::vector<float, xsimd::aligned_allocator<float, 64>>;
    Buffer slabs;              // cache_entries × ([P, width] keys, [Pv, width] values if value_slabs); ring r =
                               // entries [r·ring_entries, (r+1)·ring_entries)
    Buffer qt, s, ot;          // Qt_i [P_pad, W], S_i [max_slots, W], Ot_i [Pv_pad, W] (value_slabs), i < 3
    Buffer gathered;           // gathered tiles: [max(P, Pv), K, W]
    std::vector<Index> value_cols;  // per slab column of the tile run: its value row's offset in v (floats)
    // Per query row of the block: its weighted sum's entries (NaValueRows), those of the first chunk
    // size first (n_first of them).
    std::vector<NaValueEntry> values[kNaMaxRows];
    int n_first[kNaMaxRows] = {};
    Buffer row_max;            // [3, W]: the logits' max per row, from the qk micro-kernels
    NaLinePrefetch ahead_lines;  // 1-D: the lines of a later tile the qk micro-kernels prefetch
    // The same for a streamed dilation group's tile. On the heap: Scratch lives on run()'s stack, and
    // with 232 bytes more of it 1-D L 65536 K 7 read 1.03-1.07x the time in the VM's fast minutes
    // (in-process alternation, huge pages and one allocation; 200 bytes of padding alone 1.02), though
    // not in its slow ones.
    std::unique_ptr<NaRowPrefetch> ahead_rows = std::make_unique<NaRowPrefetch>();
    std::vector<Index> owner;  // per cache entry: the key row it holds, or -1
    std::vector<Index> entry;  // per key row: its cache entry, or -1
    std::vector<Index> next;   // per ring: its next entry to claim (its oldest)
    std::vector<NaUnionRow> uni;
    Index n_slots[kNaMaxRows] = {};
    std::vector<Index> rpb_base[kNaMaxRows];  // per key row of a query row's window: its rpb row offset
    std::vector<Index> out_base[kNaMaxRows];  // the same key row's first slot in NATTEN's order (split ops)
    Buffer rotated;  // split ops, wrapped tiles: [W, max_slots] lanes' rows in the kernel's slot order
    std::vector<std::int32_t> rpb_entry;  // rpb, other archs than AVX-512: [K, W] each lane's entry per slot
  };

  Index p_pad() const { return (plan.P + W - 1) / W * W; }
  Index pv_pad() const { return (plan.Pv + W - 1) / W * W; }
  Index slab_floats() const { return (plan.P + (plan.value_slabs ? plan.Pv : 0)) * plan.max_width; }

  void run(Index first_item, Index last_item) const {
    const NaPlan<R>& pl = plan;
    Scratch sc;
    sc.slabs.assign(std::size_t(slab_floats() * pl.cache_entries), 0.0f);
    sc.qt.assign(std::size_t(kNaMaxRows * p_pad() * W), 0.0f);
    // S_i, plus W rows: the split qk's transposes out read whole W-row chunks past the last slot.
    sc.s.assign(std::size_t((kNaMaxRows * pl.max_slots + W) * W), 0.0f);
    sc.row_max.assign(std::size_t(kNaMaxRows * W), 0.0f);
    if (pl.any_gathered) sc.gathered.assign(std::size_t(std::max(pl.P, pl.Pv) * pl.K * W), 0.0f);
    if (pl.value_slabs) sc.ot.assign(std::size_t(kNaMaxRows * pv_pad() * W), 0.0f);
    sc.value_cols.assign(std::size_t(pl.max_width), 0);
    sc.owner.assign(std::size_t(pl.cache_entries), -1);
    sc.next.assign(std::size_t(pl.cache_entries / pl.ring_entries), 0);
    if (mode != NaOutput::attention) sc.rotated.assign(std::size_t(W * pl.max_slots), 0.0f);
    if (rpb) sc.rpb_entry.assign(std::size_t(pl.K * W), 0);
    sc.entry.assign(std::size_t(pl.rows * pl.Hkv), -1);
    const Index n_runs = Index(pl.runs.size()), heads = pl.heads_inside ? pl.Hkv : 1;
    Index cached_column = -1;
    Index filled = 0;  // 1-D: slab columns filled for the current tile run
    // 1-D: the value rows are prefetched later, value_ahead tiles ahead: one past the tiles the
    // current tile's windows reach, the reach (K/2 slots of slot_step keys) rounded to the nearest
    // whole tile (K 7: the next; K 33 or K 7 dilation 4 in position order: the one after; K 65: the
    // third). A line prefetched to L1 waits there until its tile comes, and a value row waiting
    // beside the same token's query row (the same L1 set) evicts it, or is evicted, where the two
    // virtual addresses also share the way predictor's tag, on Zen bits 12-27 XORed in pairs (12,
    // 27), (13, 26), (14, 25), (15, 20) .. (19, 24): a spacing of 2^26 + 2^13 does that for half the
    // lines, and neighborhood_bench's 4 separately allocated 32 MiB tensors put q and v 64 MiB + 8
    // KiB apart (two lines' dependent loads alternating on the Zen 5 VM: 1.66 ns a load at exactly
    // those pairs' spacings, 0.98 at every other 2^a + 2^b). In-process alternation on the Zen 5 VM,
    // per token L 65536 against L 4096, K 7, three layouts, 3-6 processes each (the values with the
    // other rows, then 4 tiles past the reach -> value_ahead; causal windows measured the same):
    // `malloc`'s buffers 1.41-1.78 -> 1.24-1.38, one allocation 64 KiB apart 1.14-1.25 -> 1.11-1.22,
    // huge pages 1.04-1.09 -> 1.00-1.12;
    // L 4096 unchanged; K 33 L 65536 15.7-16.7 ms -> 14.5-14.7 (huge pages 14.8-15.0 -> 12.7), K 65
    // 24.1-25.2 -> 22.5-22.6. Nearer (the next tile for K 33 and 65) or farther (two more) was slower.
    // In position order (dilations, see na_make_plan), L 65536 against the next tile: K 7 dilation 4
    // 12.6-13.0 ms -> 8.0-8.2 (L 4096 0.47 -> 0.41), K 13 dilation 4 21.5 -> 10.0 (L 4096 0.82 ->
    // 0.53), K 33 dilation 4 28.6 -> 18.6, K 65 dilation 2 27.8 -> 24.4; a tile more or less measured
    // within 4% of these or slower.
    const Index value_ahead = R == 1 ? 1 + (pl.K / 2 * pl.slot_step + W / 2) / W : 0;
    // The other token rows (q, k, out) are prefetched ahead_tiles ahead. 1-D: one tile past the
    // values, so that the two never wait in L1 for the same tokens and the queries and keys wait
    // one tile only (they were 4 tiles past the reach, rounded up; in-process alternation, L 65536,
    // five processes a layout: K 7 on `malloc`'s buffers 1.23-1.39 per token of L 4096 against
    // 1.28-1.45, in one allocation 1.14-1.17 against 1.13-1.22, on huge pages 1.04-1.07 against
    // 1.06-1.08; K 65 24.0 ms against 25.1, K 13 dilation 4 10.3 against 10.7, the others
    // within 2%; 2 or 3 tiles past the values measured between the two; streamed dilation groups'
    // tiles were measured at this distance, see spreads_prefetch). Tiles whose rows are prefetched in
    // bursts (dilation groups in cache, the split av; see run_tile) keep 4 tiles past the reach,
    // rounded up, the distance they were measured at. 3-D: the next tile; 2-D: none (see run_tile).
    const Index ahead_tiles = R == 1 ? (spreads_prefetch() ? value_ahead + 1 : 4 + (pl.K / 2 * pl.slot_step + W - 1) / W)
                              : R == 2 ? 0 : 1;
    for (Index item = first_item; item < last_item; ++item) {
      // column = (b, tile run, kv head unless heads_inside): the kv heads of a run are neighbours.
      const Index column = item / pl.block_runs, block_run = item % pl.block_runs;
      const Index hkv0 = pl.heads_inside ? 0 : column % pl.Hkv, br = pl.heads_inside ? column : column / pl.Hkv;
      const Index b = br / n_runs;
      const NaTileRun& tiles = pl.runs[std::size_t(br % n_runs)];
      if (column != cached_column) {
        for (Index e = 0; e < pl.cache_entries; ++e)
          if (sc.owner[std::size_t(e)] >= 0) sc.entry[std::size_t(sc.owner[std::size_t(e)])] = -1, sc.owner[std::size_t(e)] = -1;
        cached_column = column;
        if (pl.value_rows) value_columns(sc, tiles);
        if (R == 1 && slab_floats() > 0)  // the one key row of every kv head, filled as the tiles reach it
          for (Index hkv = 0; hkv < pl.Hkv; ++hkv) claim_slab(sc, 0, hkv);
        filled = 0;
      }
      for (Index blk = pl.first_block(block_run); blk < pl.first_block(block_run + 1); ++blk) {
        block_union(sc, pl.blocks[std::size_t(blk)]);
        if (pl.value_rows && (mode == NaOutput::attention || mode == NaOutput::weighted_sum))
          value_entries(sc, pl.blocks[std::size_t(blk)]);
        // 1-D: tile by tile, every kv head of each (token rows prefetched past the run's end: in the
        // next item's run); 2-D / 3-D: head by head, every tile of each.
        const Index n_tiles = tiles.tiles;
        const NaTile* run_tiles = pl.tiles.data() + tiles.tile0;
        for (Index step = 0; step < n_tiles * heads; ++step) {
          const Index t = R == 1 ? step / heads : step % n_tiles;
          const Index hkv = hkv0 + (R == 1 ? step % heads : step / n_tiles);
          if (R == 1 && step % heads == 0 && slab_floats() > 0)  // the key columns the tile's windows reach
            fill_slab_columns(sc, tiles, b, filled, std::min(tiles.width, pl.end_column(run_tiles[t]) - tiles.c_lo));
          const auto later_tile = [&](Index tiles_ahead) -> NaTileAt {  // of this run, or of the next item's
            if (tiles_ahead == 0) return {};
            if (t + tiles_ahead < n_tiles) return {&run_tiles[t + tiles_ahead], b};
            if (R == 1 && item + 1 < last_item) return tile_of_item(item + 1, t + tiles_ahead - n_tiles);
            return {};
          };
          const NaTileAt ahead = later_tile(ahead_tiles);
          if (spreads_prefetch() && step % heads == 0) list_tile_lines(sc, ahead, later_tile(value_ahead));
          run_tile(sc, pl.blocks[std::size_t(blk)], tiles, run_tiles[t], ahead, b, hkv);
        }
      }
    }
    if (pl.stream_out) simd::stream_fence();  // the streamed rows before the caller's join
  }

 private:
  // The union of the windows of a block's query rows, in ascending key row, and each row's slot count
  // and rpb offsets.
  void block_union(Scratch& sc, const std::array<Index, kNaMaxRows + 1>& blk) const {
    const NaPlan<R>& pl = plan;
    const int n = int(blk[0]);
    sc.uni.clear();
    if constexpr (R == 1) {
      NaUnionRow u;
      u.key_row = 0, u.n_active = 1;
      sc.uni.push_back(u);
      sc.n_slots[0] = pl.K;
      sc.rpb_base[0].assign(1, 0);
      sc.out_base[0].assign(1, 0);
      return;
    } else {
      constexpr int O = R - 1;  // outer axes
      std::array<std::array<AxisWindow, O>, kNaMaxRows> win{};
      for (int i = 0; i < n; ++i) {
        const std::array<Index, R> c = na_row_coords(pl, blk[std::size_t(i + 1)]);
        for (int a = 0; a < O; ++a)
          win[std::size_t(i)][std::size_t(a)] = neighborhood_axis_window(
              c[std::size_t(a)], pl.extent[std::size_t(a)], pl.params.kernel_size[std::size_t(a)],
              pl.params.dilation[std::size_t(a)], pl.params.stride[std::size_t(a)], pl.params.causal[std::size_t(a)]);
        Index slots = pl.K;
        for (int a = 0; a < O; ++a) slots *= win[std::size_t(i)][std::size_t(a)].count;
        sc.n_slots[i] = slots;
        sc.rpb_base[i].assign(std::size_t(slots / pl.K), 0);
        sc.out_base[i].assign(std::size_t(slots / pl.K), 0);
      }
      // Axes before R-2 have the same window for every row of the block; along R-2 the union runs
      // from the smallest first key to the largest last key (consecutive windows overlap).
      std::array<Index, O> lo{}, count{}, step{};
      for (int a = 0; a < O; ++a) {
        const AxisWindow& w0 = win[0][std::size_t(a)];
        lo[std::size_t(a)] = w0.first, count[std::size_t(a)] = w0.count, step[std::size_t(a)] = w0.step;
      }
      {
        Index hi = std::numeric_limits<Index>::min();
        for (int i = 0; i < n; ++i) {
          const AxisWindow& w = win[std::size_t(i)][std::size_t(O - 1)];
          lo[std::size_t(O - 1)] = std::min(lo[std::size_t(O - 1)], w.first);
          hi = std::max(hi, w.first + (w.count - 1) * w.step);
        }
        count[std::size_t(O - 1)] = (hi - lo[std::size_t(O - 1)]) / step[std::size_t(O - 1)] + 1;
      }
      std::array<Index, O> nn{};
      for (bool more = true; more;) {
        // Built in place: a local pushed back was copied with wide loads over its narrower stores
        // (a store-forwarding stall per row).
        NaUnionRow& u = sc.uni.emplace_back();
        Index key_row = 0;
        for (int a = 0; a < O; ++a)
          key_row = key_row * pl.extent[std::size_t(a)] + lo[std::size_t(a)] + nn[std::size_t(a)] * step[std::size_t(a)];
        u.key_row = key_row;
        for (int i = 0; i < n; ++i) {
          // This key row's index in row i's window list (mixed radix over the outer axes).
          Index idx = 0, rpb = 0, natten = 0;  // natten: the index with radix K_a (NATTEN's slots)
          bool inside = true;
          for (int a = 0; a < O; ++a) {
            const AxisWindow& w = win[std::size_t(i)][std::size_t(a)];
            const Index coord = lo[std::size_t(a)] + nn[std::size_t(a)] * step[std::size_t(a)];
            const Index m = (coord - w.first) / w.step;
            inside = inside && coord >= w.first && m < w.count;
            idx = idx * w.count + m;
            natten = natten * pl.params.kernel_size[std::size_t(a)] + m;
            rpb = rpb * (2 * pl.params.kernel_size[std::size_t(a)] - 1) + w.rpb_first + m;
          }
          if (!inside) continue;
          u.active[u.n_active] = i, u.slot_base[u.n_active] = idx * pl.K, ++u.n_active;
          sc.rpb_base[i][std::size_t(idx)] = rpb * (2 * pl.K - 1);
          sc.out_base[i][std::size_t(idx)] = natten * pl.K;
        }
        if (u.n_active == 0) sc.uni.pop_back();
        more = false;
        for (int a = O - 1; a >= 0; --a) {
          if (++nn[std::size_t(a)] < count[std::size_t(a)]) {
            more = true;
            break;
          }
          nn[std::size_t(a)] = 0;
        }
      }
    }
  }

  float* slab_at(Scratch& sc, Index row, Index hkv) const {
    return sc.slabs.data() + sc.entry[std::size_t(row * plan.Hkv + hkv)] * slab_floats();
  }

  // Gives (row, hkv) the oldest entry of its kv head's ring (of the one ring unless heads_inside).
  void claim_slab(Scratch& sc, Index row, Index hkv) const {
    const Index ring = plan.heads_inside ? hkv : 0, key = row * plan.Hkv + hkv;
    Index& next = sc.next[std::size_t(ring)];
    const Index e = ring * plan.ring_entries + next;
    next = (next + 1) % plan.ring_entries;
    if (sc.owner[std::size_t(e)] >= 0) sc.entry[std::size_t(sc.owner[std::size_t(e)])] = -1;
    sc.owner[std::size_t(e)] = key, sc.entry[std::size_t(key)] = e;
  }

  // Transposes the key columns c0 .. c0 + W - 1 of (row, hkv) into its slab dst ([P, width] keys,
  // then, if value_slabs, [Pv, width] values). Columns of keys outside the axis repeat the nearest
  // key: only lanes past the axis end and causal slots at -inf (weight 0) read them, and the values
  // must be finite. 3-D: prefetches the same columns of the next row along axis R-2 (the next slab a
  // walk down the rows fills, and the value rows the weighted sum then reads in place; see run_tile).
  void fill_slab_chunk(float* dst, Index row, const NaTileRun& tiles, Index b, Index hkv, Index c0) const {
    const NaPlan<R>& pl = plan;
    const Index Lg = pl.group_length(tiles.group);
    // A chunk that no lane inside the axis reads (wholly before the axis and its wrapped columns, or
    // past NaTileRun::read_end) is only read by lanes past its end and masked slots: whatever finite
    // values the slab holds (zeros, or an earlier row's keys) will do. (56x56 K 7: 4 chunks a row,
    // not 5.)
    const Index band = pl.wrap_borders() ? pl.K * pl.slot_step : 0;
    if (c0 >= tiles.read_end || tiles.c_lo + c0 + W <= -band) return;
    const Index token0 = b * pl.tokens + row * pl.L + tiles.group;  // the group's column 0 in this row
    const Index k_stride = pl.col_step * pl.Hkv * pl.P, v_stride = pl.col_step * pl.Hkv * pl.Pv;
    const float* k0 = k + (token0 * pl.Hkv + hkv) * pl.P;
    const float* v0 = v + (token0 * pl.Hkv + hkv) * pl.Pv;
    const Index key0 = tiles.c_lo + c0;
    if constexpr (R == 3) {
      if (const Index next_row = row + pl.params.dilation[std::size_t(R - 2)]; next_row < pl.rows) {
        const Index shift = (next_row - row) * pl.L;  // tokens
        const Index first = std::min(std::max<Index>(key0, 0), Lg - 1), n = std::min(W, Lg - first);
        prefetch_rows(k0 + shift * pl.Hkv * pl.P + first * k_stride, k_stride, n, pl.P);
        prefetch_rows(v0 + shift * pl.Hkv * pl.Pv + first * v_stride, v_stride, n, pl.Pv);
      }
    }
    if (key0 < 0 || key0 + W > Lg) {  // a border chunk: each column's key by NaPlan::slab_key
      Index keys[kNaMaxLanes];
      const float* rows[kNaMaxLanes];
      for (Index lane = 0; lane < W; ++lane) keys[lane] = pl.slab_key(Lg, key0 + lane), rows[lane] = k0 + keys[lane] * k_stride;
      transpose_rows_in<Arch>(rows, pl.P, dst + c0, tiles.width);
      if (pl.value_slabs) {
        for (Index lane = 0; lane < W; ++lane) rows[lane] = v0 + keys[lane] * v_stride;
        transpose_rows_in<Arch>(rows, pl.Pv, dst + pl.P * tiles.width + c0, tiles.width);
      }
      return;
    }
    transpose_lanes_in<Arch>(k0 + key0 * k_stride, k_stride, 0, W, pl.P, dst + c0, tiles.width);
    if (pl.value_slabs)
      transpose_lanes_in<Arch>(v0 + key0 * v_stride, v_stride, 0, W, pl.Pv, dst + pl.P * tiles.width + c0, tiles.width);
  }

  // 1-D: fills the slab columns [filled, end) of every kv head (end rounded up to whole chunks).
  void fill_slab_columns(Scratch& sc, const NaTileRun& tiles, Index b, Index& filled, Index end) const {
    for (; filled < end; filled += W)
      for (Index hkv = 0; hkv < plan.Hkv; ++hkv) fill_slab_chunk(slab_at(sc, 0, hkv), 0, tiles, b, hkv, filled);
  }

  // Whether the qk micro-kernels prefetch the token rows of later tiles (see NaLinePrefetch): 1-D
  // tiles of consecutive tokens, and dilation groups' tiles where the tensors stream from memory.
  // Against the groups' bursts (run_tile), in-process alternation on the Zen 5 VM, `malloc`'s
  // buffers, bitwise the same outputs: L 65536 K 33 dilation 8 30.3 ms -> 23.0, K 9 dilation 40 19.5
  // -> 12.7, K 65 dilation 4 27.8 -> 26.4, K 13 dilation 8 17.6 -> 16.7, K 33 dilation 5 17.7 ->
  // 17.1; but in cache (a warm loop of L 4096 calls) 1.06-1.19x the time (K 65 dilation 4, K 33
  // dilation 8 and 5, K 13 dilation 8, K 9 dilation 40: the prefetch state and the strided lines'
  // address arithmetic in the micro-kernel's loop), so in-cache groups keep their bursts.
  bool spreads_prefetch() const {
    return R == 1 && (plan.col_step == 1 || plan.stream_out) && mode != NaOutput::weighted_sum;
  }

  // 1-D: the lines of the tile's token rows that the qk micro-kernels prefetch (NaLinePrefetch): q, k,
  // and the output rows unless streamed, every head's, of tile `at`; v's of tile `values_at` (nearer:
  // see value_ahead in run). Tiles of consecutive tokens give a range per tensor, dilation groups'
  // tiles rows col_step tokens apart.
  void list_tile_lines(Scratch& sc, NaTileAt at, NaTileAt values_at) const {
    const NaPlan<R>& pl = plan;
    NaLinePrefetch& lines = sc.ahead_lines;
    NaRowPrefetch& rows = *sc.ahead_rows;
    lines.restart(), rows.restart();
    // The rows of tile x's tokens in a tensor of `floats` floats a token.
    const auto add_tile = [&](const float* tensor, Index floats, NaTileAt x, bool write = false) {
      const float* const first = tensor + (x.b * pl.tokens + x.tile->group + pl.col_step * x.tile->first) * floats;
      if (pl.col_step == 1)
        lines.add(first, x.tile->count * floats, write);
      else
        rows.add_rows(first, floats, x.tile->count, pl.col_step * floats, write);
    };
    const bool logits_out = mode == NaOutput::logits || mode == NaOutput::probabilities;
    if (at.tile) {
      add_tile(q, pl.H * pl.P, at);
      add_tile(k, pl.Hkv * pl.P, at);
    }
    if (!logits_out && values_at.tile) add_tile(v, pl.Hkv * pl.Pv, values_at);
    if (at.tile && (logits_out || !pl.stream_out))
      add_tile(logits_out ? logits : out, pl.H * (logits_out ? pl.max_slots : pl.Pv), at, true);
    // Over the iterations of the tile's first-chunk qk calls (one per head in 1-D): calls with the
    // prefetches in their loop run slower (their state takes registers), and wider windows (more
    // chunks) do more work per line anyway. K 33 (5 chunks), L 4096, in-process alternation on the
    // Zen 5 VM: 1.22 ms with the prefetches in every call, 0.94-0.98 with none in any (bursts per
    // tile), 0.86-0.92 in the first chunk's (the previous code's 0.85-0.90).
    lines.spread(pl.H * pl.P), rows.spread(pl.H * pl.P);
  }

  // 1-D: tile t of work item `item`'s tile run (null past its last tile), and its batch.
  NaTileAt tile_of_item(Index item, Index t) const {
    const NaPlan<R>& pl = plan;
    const Index br = item / pl.block_runs, n_runs = Index(pl.runs.size());
    const NaTileRun& run = pl.runs[std::size_t(br % n_runs)];
    if (t >= run.tiles) return {};
    return {pl.tiles.data() + run.tile0 + t, br / n_runs};
  }

  // The value-row offset (floats from v, at row 0 and kv head 0) of every slab column of a tile run:
  // the key that column holds (NaPlan::slab_key, as the key slab), so that the weighted sum reads the
  // value of each slot's key.
  void value_columns(Scratch& sc, const NaTileRun& tiles) const {
    const NaPlan<R>& pl = plan;
    const Index Lg = pl.group_length(tiles.group);
    for (Index c = 0; c < tiles.width; ++c)
      sc.value_cols[std::size_t(c)] = (tiles.group + pl.col_step * pl.slab_key(Lg, tiles.c_lo + c)) * pl.Hkv * pl.Pv;
  }

  // The slabs of (row, hkv) for the tile run, from the cache or transposed now.
  const float* slab(Scratch& sc, Index row, const NaTileRun& tiles, Index b, Index hkv) const {
    if (sc.entry[std::size_t(row * plan.Hkv + hkv)] >= 0) return slab_at(sc, row, hkv);
    claim_slab(sc, row, hkv);
    float* dst = slab_at(sc, row, hkv);
    for (Index c0 = 0; c0 < tiles.width; c0 += W) fill_slab_chunk(dst, row, tiles, b, hkv, c0);
    return dst;
  }

  // One pass of micro-kernels over the block's union rows for one tile: the logits (Qk), or the
  // weighted sum with the queries in the lanes (tiles of na_value_step 0: the values' slabs into Ot).
  // prefetch / row_prefetch: lines the qk micro-kernels prefetch as they go (NaLinePrefetch,
  // NaRowPrefetch), or nullptr.
  template <bool Qk>
  void products(Scratch& sc, const NaTileRun& tiles, const NaTile& tile, Index b, Index hkv,
                NaLinePrefetch* prefetch = nullptr, NaRowPrefetch* row_prefetch = nullptr) const {
    const NaPlan<R>& pl = plan;
    if (Qk && pairs_tile(tile)) return pair_products(sc, tiles, tile, b, hkv);
    const bool gathered = tile.keys == NaTile::Keys::gathered;
    const Index depth = Qk ? pl.P : pl.Pv;
    const bool fused_max = fused_row_max(tile);
    for (const NaUnionRow& u : sc.uni) {
      const float* row_slab = slab(sc, u.key_row, tiles, b, hkv) + (Qk ? 0 : pl.P * tiles.width);  // [depth, width]
      const float* keys = row_slab + (tile.a_min - tiles.c_lo);
      Index ldp = tiles.width, ldj = pl.slot_step;
      if (gathered) {  // [depth, K, W]: lane i's slot j is column a_i + j·slot_step
        float* g = sc.gathered.data();
        for (Index p = 0; p < depth; ++p)
          for (Index j = 0; j < pl.K; ++j)
            for (Index i = 0; i < W; ++i)
              g[(p * pl.K + j) * W + i] = row_slab[p * tiles.width + tile.a[i] + j * pl.slot_step - tiles.c_lo];
        keys = g, ldp = pl.K * W, ldj = W;
      }
      Index j0 = 0;
      for (const int J : pl.chunk) {
        NaMicro m{};
        for (int x = 0; x < u.n_active; ++x) {
          const int i = u.active[x];
          float* s_chunk = sc.s.data() + (i * pl.max_slots + u.slot_base[x] + j0) * W;
          if (Qk) {
            m.in[x] = sc.qt.data() + i * p_pad() * W, m.out[x] = s_chunk;
            m.max_out[x] = fused_max ? sc.row_max.data() + i * W : nullptr;
          } else {
            m.in[x] = s_chunk, m.out[x] = sc.ot.data() + i * pv_pad() * W;
          }
        }
        m.slab = keys + j0 * ldj, m.ldp = ldp, m.ldj = ldj, m.depth = depth, m.col = tile.col;
        m.prefetch = j0 == 0 ? prefetch : nullptr;  // the first chunk's calls only: see list_tile_lines
        m.row_prefetch = j0 == 0 ? row_prefetch : nullptr;
        m.misalign = int((reinterpret_cast<std::uintptr_t>(m.slab) / sizeof(float)) % 16);
        na_micro<Arch, Qk>(m, u.n_active, J, tile.keys == NaTile::Keys::permuted);
        j0 += J;
      }
    }
  }

  // The logits of a pairs_tile: per key row of the union, its rows' queries in packed rows (Qt row 0
  // = block rows 0 | 1, Qt row 1 = rows 1 | 2; see run_tile): rows 0 and 1 from the first, row 2
  // from the upper half of the second; rows 1 and 2 both from the second where row 0 does not see
  // the key row.
  void pair_products(Scratch& sc, const NaTileRun& tiles, const NaTile& tile, Index b, Index hkv) const {
    const NaPlan<R>& pl = plan;
    const bool fused_max = fused_row_max(tile);
    for (const NaUnionRow& u : sc.uni) {
      const float* keys = slab(sc, u.key_row, tiles, b, hkv) + (tile.a_min - tiles.c_lo);  // [P, width]
      Index base[kNaMaxRows] = {-1, -1, -1};  // per block row: its first slot of this key row, or -1
      for (int x = 0; x < u.n_active; ++x) base[u.active[x]] = u.slot_base[x];
      // (packed row, half) -> block row, or -1
      int rows[2][2] = {{-1, -1}, {-1, -1}}, n_packed = 0;
      if (base[0] >= 0 || base[2] < 0) {
        rows[n_packed][0] = base[0] >= 0 ? 0 : -1, rows[n_packed][1] = base[1] >= 0 ? 1 : -1, ++n_packed;
        if (base[2] >= 0) rows[n_packed][1] = 2, ++n_packed;
      } else {
        rows[n_packed][0] = base[1] >= 0 ? 1 : -1, rows[n_packed][1] = 2, ++n_packed;
      }
      // The second packed row is Qt row 1 (rows 1 | 2) whenever row 2 is in it.
      const int qt_row[2] = {rows[0][1] == 2 ? 1 : 0, 1};
      Index j0 = 0;
      for (const int J : pl.chunk) {
        NaPairMicro m;
        for (int x = 0; x < n_packed; ++x) {
          m.in[x] = sc.qt.data() + qt_row[x] * p_pad() * W;
          for (int h = 0; h < 2; ++h) {
            const int i = rows[x][h];
            if (i < 0) continue;
            m.out[x][h] = sc.s.data() + (i * pl.max_slots + base[i] + j0) * W;
            m.max_out[x][h] = fused_max ? sc.row_max.data() + i * W : nullptr;
          }
        }
        m.slab = keys + j0, m.ldp = tiles.width, m.depth = pl.P;
        if (n_packed == 1)
          na_qk_pairs_j<Arch, 1>(m, J);
        else
          na_qk_pairs_j<Arch, 2>(m, J);
        j0 += J;
      }
    }
  }

  // The weighted sums' entries of the block's rows: per key row of a row's window and chunk of its
  // slots, grouped by chunk size (K splits into chunks of at most two sizes).
  void value_entries(Scratch& sc, const std::array<Index, kNaMaxRows + 1>& blk) const {
    const NaPlan<R>& pl = plan;
    const int n = int(blk[0]), J_first = pl.chunk.front();
    const bool two_sizes = pl.chunk.back() != J_first;
    for (int i = 0; i < n; ++i) sc.values[i].clear();
    // One pass over the union per chunk size (the rows' entries in union order within each).
    for (const bool first_size : {true, false}) {
      if (!first_size && !two_sizes) break;
      for (const NaUnionRow& u : sc.uni)
        for (int x = 0; x < u.n_active; ++x) {
          const int i = u.active[x];
          Index j0 = 0;
          for (const int J : pl.chunk) {
            if ((J == J_first) == first_size) {
              NaValueEntry& entry = sc.values[i].emplace_back();  // in place: see block_union
              entry.w = sc.s.data() + (i * pl.max_slots + u.slot_base[x] + j0) * W;
              entry.row = u.key_row * pl.L * pl.Hkv * pl.Pv, entry.j0 = j0;
            }
            j0 += J;
          }
        }
      if (first_size)
        for (int i = 0; i < n; ++i) sc.n_first[i] = int(sc.values[i].size());
    }
  }

  // na_av_rows' lanes per block for a tile's na_value_step (1, 2 or 4).
  static Index value_lanes(int step) {
    return step == 2 ? kNaValueLanes<Arch, 2> : step == 4 ? kNaValueLanes<Arch, 4> : kNaValueLanes<Arch>;
  }

  // out · scale of the block's rows for one tile, query head h and the lane block lane0 + l·step,
  // l < value_lanes(step): Σ_slots S_i[slot] · v[the slot's key] (see na_av_rows), times lane's
  // scale[i][lane], written to the lanes' token rows in place. step: the tile's na_value_step (1, 2, 4).
  void weighted_values(Scratch& sc, const std::array<Index, kNaMaxRows + 1>& blk, const NaTile& tile,
                       const NaTileRun& tiles, Index b, Index h, Index hkv, int step,
                       const float (*scale)[kNaMaxLanes], Index lane0) const {
    const NaPlan<R>& pl = plan;
    const int n_rows = int(blk[0]);
    const Index Pv = pl.Pv;
    const Index LS = step;  // tile lanes between a block's lanes
    const Index LB = value_lanes(step);
    const int J1 = pl.chunk.front(), J2 = pl.chunk.back();
    NaValueRows m;
    m.n_rows = n_rows;
    for (int i = 0; i < n_rows; ++i) {
      const Index token0 = b * pl.tokens + blk[std::size_t(i + 1)] * pl.L + tile.group + pl.col_step * tile.first;
      NaValueRows::Row& row = m.rows[i];
      row.entries = sc.values[i].data(), row.n = int(sc.values[i].size()), row.n_first = sc.n_first[i];
      row.out = out + ((token0 + pl.col_step * lane0) * pl.H + h) * Pv, row.scale = scale[i] + lane0;
    }
    const float* const v_row0 = v + b * pl.tokens * pl.Hkv * Pv + hkv * Pv;
    m.cols = sc.value_cols.data() + (tile.a_min - tiles.c_lo) + lane0;
    m.lane0 = lane0, m.out_stride = pl.col_step * pl.H * Pv, m.stream = pl.stream_out;
    m.lanes = int(std::min(LB, (tile.count - lane0 + LS - 1) / LS));
    // Channels 2W at a time, then W; the last Pv mod W one by one.
    for (Index p0 = 0; p0 + W <= Pv;) {
      const int nv = p0 + 2 * W <= Pv ? 2 : 1;
      m.v_row0 = v_row0 + p0;
      na_av<Arch>(m, J1, J2, step, nv);
      for (int i = 0; i < n_rows; ++i) m.rows[i].out += nv * W;
      p0 += nv * W;
    }
    for (int i = 0; i < n_rows; ++i) {
      const std::vector<NaValueEntry>& entries = sc.values[i];
      const int n = int(entries.size()), n_first = sc.n_first[i];
      float* const out0 = m.rows[i].out - Pv / W * W;  // lane0's first channel
      for (Index p = Pv / W * W; p < Pv; ++p)
        for (Index l = 0; l < m.lanes; ++l) {
          float sum = 0.0f;
          for (int e = 0; e < n; ++e) {
            const NaValueEntry& entry = entries[std::size_t(e)];
            for (int j = 0; j < (e < n_first ? J1 : J2); ++j)
              sum += entry.w[j * W + lane0 + l * LS] * v_row0[entry.row + m.cols[(entry.j0 + l + j) * LS] + p];
          }
          out0[l * LS * m.out_stride + p] = sum * scale[i][lane0 + l * LS];
        }
    }
  }

  void run_tile(Scratch& sc, const std::array<Index, kNaMaxRows + 1>& blk, const NaTileRun& tiles, const NaTile& tile,
                NaTileAt ahead, Index b, Index hkv) const {
    const NaPlan<R>& pl = plan;
    const int n = int(blk[0]);
    const Index group_heads = pl.H / pl.Hkv;
    const Index lane_stride = pl.col_step;  // tokens between lanes
    const auto token0_of = [&](const NaTile& t, int i, Index batch) {  // the token of lane 0 in query row i
      return batch * pl.tokens + blk[std::size_t(i + 1)] * pl.L + t.group + pl.col_step * t.first;
    };
    // Per (token, head): what a tile reads (q, or the split av's weights) and writes (out or logits).
    const Index S_full = pl.max_slots;
    const bool qk = mode != NaOutput::weighted_sum, pv = mode == NaOutput::attention || mode == NaOutput::weighted_sum;
    const float* in_rows = qk ? q : weights;
    const Index in_floats = qk ? pl.P : S_full;
    float* out_rows = pv ? out : logits;
    const Index out_floats = pv ? pl.Pv : S_full;
    // 1-D: a later tile's rows are prefetched from inside the qk micro-kernels (run lists them, see
    // NaLinePrefetch), or, where they are not (dilation groups in cache, the split av), here in one go; 3-D:
    // the next tile's, here (and the slab fill the next key row's). 2-D prefetches nothing (ahead is
    // null): with the same bursts as 3-D, 56x56 K 7 measured 0.70-0.72 ms against 0.67-0.69 without
    // on the Zen 5 VM (in-process alternation, order rotated; 28x28 0.187 against 0.181, K 13 the
    // same); a slice of the lines after each qk call, the next block's queries after each qk call or
    // the tile's value rows over the softmax 0.66-0.86. 3-D 8x28x28 K 3x7x7 without them: 1.04-1.08x
    // the time (medians), its tensors (13 MB) far past the L2. The trade: while the VM's host slowed
    // its memory, 2-D with the bursts held up better (medians of 150 alternated rounds: 1.12 ms
    // against 1.46 without; in five quiet runs 0.73-0.94 against 0.68-0.90).
    const bool spread_prefetch = spreads_prefetch() && ahead.tile;
    if (ahead.tile && !spread_prefetch) {  // the inputs and outputs of this kv head's query heads in a later tile
      const Index h0 = hkv * group_heads;
      for (int i = 0; i < n; ++i) {
        const Index token0 = token0_of(*ahead.tile, i, ahead.b);
        prefetch_rows(in_rows + (token0 * pl.H + h0) * in_floats, lane_stride * pl.H * in_floats, ahead.tile->count,
                      group_heads * in_floats);
        if (!(pv && pl.stream_out))  // streamed outputs skip the caches: a prefetch would only read them
          prefetch_rows(out_rows + (token0 * pl.H + h0) * out_floats, lane_stride * pl.H * out_floats,
                        ahead.tile->count, group_heads * out_floats, true);
        if (R == 1) {  // and the kv head's keys and values (3-D: the slab fill prefetches the next row's)
          prefetch_rows(k + (token0 * pl.Hkv + hkv) * pl.P, lane_stride * pl.Hkv * pl.P, ahead.tile->count, pl.P);
          prefetch_rows(v + (token0 * pl.Hkv + hkv) * pl.Pv, lane_stride * pl.Hkv * pl.Pv, ahead.tile->count, pl.Pv);
        }
      }
    }
    for (Index h = hkv * group_heads; h < (hkv + 1) * group_heads; ++h) {
      if (qk) {
        const Index q_stride = lane_stride * pl.H * pl.P;
        const auto q_row = [&](int i) { return q + (token0_of(tile, i, b) * pl.H + h) * pl.P; };
        if (pairs_tile(tile)) {  // Qt row 0 = block rows 0 | 1, row 1 = rows 1 | 2 (see pair_products)
          for (int x = 0; x < std::max(1, n - 1); ++x) {
            const float* rows[kNaMaxLanes];
            for (Index lane = 0; lane < W / 2; ++lane) {
              const Index at = std::min(lane, tile.count - 1) * q_stride;
              rows[lane] = q_row(x) + at, rows[W / 2 + lane] = q_row(std::min(x + 1, n - 1)) + at;
            }
            transpose_rows_in<Arch>(rows, pl.P, sc.qt.data() + x * p_pad() * W, W);
          }
        } else {
          for (int i = 0; i < n; ++i)
            transpose_lanes_in<Arch>(q_row(i), q_stride, 0, tile.count, pl.P, sc.qt.data() + i * p_pad() * W, W);
        }
        std::fill_n(sc.row_max.data(), kNaMaxRows * W, -std::numeric_limits<float>::infinity());
        products<true>(sc, tiles, tile, b, hkv, spread_prefetch && pl.col_step == 1 ? &sc.ahead_lines : nullptr,
                       spread_prefetch && pl.col_step > 1 ? sc.ahead_rows.get() : nullptr);
      }
      if (!pv) {  // the split logits or their softmax, to memory in NATTEN's slot order
        for (int i = 0; i < n; ++i) {
          float fill = -std::numeric_limits<float>::infinity();  // slots outside a causal window
          if (mode == NaOutput::probabilities) {
            V m, l;
            softmax(sc, i, tile, h, m, l);
            const V inv = V(1.0f) / l;
            float* S = sc.s.data() + i * pl.max_slots * W;
            for (Index x = 0; x < sc.n_slots[i]; ++x) simd::store<Arch>(S + x * W, simd::load<Arch>(S + x * W) * inv);
            fill = 0.0f;
          } else {
            bias_and_mask(sc, i, tile, h, V(1.0f));
          }
          write_logits(sc, i, tile, logits + (token0_of(tile, i, b) * pl.H + h) * S_full, lane_stride * pl.H * S_full, fill);
        }
        continue;
      }
      V row_max[kNaMaxRows], row_sum[kNaMaxRows];
      for (int i = 0; i < n; ++i)
        if (mode == NaOutput::attention)
          softmax(sc, i, tile, h, row_max[i], row_sum[i]);
        else
          read_weights(sc, i, tile, weights + (token0_of(tile, i, b) * pl.H + h) * S_full, lane_stride * pl.H * S_full);
      const int value_step = na_value_step<Arch>(tile.keys, pl.slot_step);
      const bool in_lanes = value_step == 0;
      // Per row, what its lanes' weighted sums are scaled by: 1 / row_sum (attention), 1 (the split
      // av's given weights). Once per row and tile, not per lane block.
      alignas(64) float inv_sum[kNaMaxRows][kNaMaxLanes];
      for (int i = 0; i < n; ++i)
        simd::store<Arch>(inv_sum[i], mode == NaOutput::attention ? V(1.0f) / row_sum[i] : V(1.0f));
      if (in_lanes) {  // the queries in the lanes: Ot_i from the value slabs, then transposed out
        for (int i = 0; i < n; ++i) std::fill_n(sc.ot.data() + i * pv_pad() * W, pl.Pv * W, 0.0f);
        products<false>(sc, tiles, tile, b, hkv);
      } else {
        // Lane blocks (lanes lane0 + l·step, lane0 = residue + a multiple of value_lanes·step), the
        // block's rows in turn within each: rows i and i + 1 share all but one of their key rows, whose
        // value rows the second then reads from L1. Against row by row (in-process alternation, Zen 5
        // VM): 56x56 K 7 0.98-0.99 of the time, 28x28 0.98, K 13 0.98.
        const Index LS = value_step, LB = value_lanes(value_step);
        for (Index residue = 0; residue < LS; ++residue)
          for (Index lane0 = residue; lane0 < tile.count; lane0 += LB * LS)
            weighted_values(sc, blk, tile, tiles, b, h, hkv, value_step, inv_sum, lane0);
      }
      for (int i = 0; i < n; ++i) {
        const Index token0 = token0_of(tile, i, b);
        if (in_lanes) {
          float* ot = sc.ot.data() + i * pv_pad() * W;
          if (mode == NaOutput::attention) {
            const V inv = simd::load<Arch>(inv_sum[i]);
            for (Index p = 0; p < pl.Pv; ++p) simd::store<Arch>(ot + p * W, simd::load<Arch>(ot + p * W) * inv);
          }
          transpose_lanes_out<Arch>(ot, pl.Pv, tile.count, out + (token0 * pl.H + h) * pl.Pv, lane_stride * pl.H * pl.Pv);
        }
        if (lse) {
          alignas(64) float m[kNaMaxLanes], l[kNaMaxLanes];
          simd::store<Arch>(m, row_max[i]), simd::store<Arch>(l, row_sum[i]);
          for (Index lane = 0; lane < tile.count; ++lane)
            lse[(token0 + lane * lane_stride) * pl.H + h] = (m[lane] + std::log2(l[lane])) * simd::kLn2;
        }
      }
    }
  }

  // Row i's q·k -> logits: times q_scale, plus rpb·bias_scale (log2(e) for the softmax's exp2, 1 for
  // the split logits), and -inf at the slots outside causal windows.
  void bias_and_mask(Scratch& sc, int i, const NaTile& tile, Index h, V bias_scale) const {
    const NaPlan<R>& pl = plan;
    float* S = sc.s.data() + i * pl.max_slots * W;  // [n_slots, W]
    const Index n_slots = sc.n_slots[i];
    const V c(pl.q_scale);
    if (!rpb && !tile.masked)
      for (Index x = 0; x < n_slots; ++x) simd::store<Arch>(S + x * W, simd::load<Arch>(S + x * W) * c);
    if (rpb) {
      // Slot j of lane takes the table entry rpb_first + window_slot(j) of its row (wrapped tiles:
      // (rot + j) mod K; rpb comes without causal axes, so no slot is masked here).
      const float* table = rpb + h * rpb_table_size();
#if defined(__AVX512F__)
      if constexpr (simd::is_avx512<Arch>) {
        // Lane i of slot j takes entry at_j[i] = rpb_first[i] + (rot[i] + j) mod K of the table row
        // (2K - 1 entries along the last axis). K <= 16: the row is two vectors and each slot's
        // biases one permute of them; else a gather per slot (lane-by-lane loads then a vector load
        // of them stalled on store forwarding: measured, the split qk's largest cost). Permutes
        // against gathers, fused NA with rpb (in-process alternation): 2-D 56x56 and 28x28 K 7
        // 0.92-0.94 of the time, 56x56 K 13 0.90-0.91, 3-D 8x28x28 K 3x7x7 0.95, 1-D L 4096 K 7 0.98-0.99.
        const __m512i first = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_loadu_si512(tile.rpb_first))),
            _mm512_cvtepi64_epi32(_mm512_loadu_si512(tile.rpb_first + 8)), 1);
        const __m512i rot = _mm512_loadu_si512(tile.rot), K = _mm512_set1_epi32(int(pl.K));
        const auto entries = [&](Index j) {  // at_j
          __m512i m = _mm512_add_epi32(rot, _mm512_set1_epi32(int(j)));
          m = _mm512_mask_sub_epi32(m, _mm512_cmpge_epi32_mask(m, K), m, K);
          return _mm512_add_epi32(first, m);
        };
        if (pl.K <= kNaRpbPermuteMaxK) {
          const Index row_len = 2 * pl.K - 1;
          const __mmask16 lo_mask = __mmask16((1u << std::min<Index>(row_len, 16)) - 1u);
          const __mmask16 hi_mask = __mmask16(row_len > 16 ? (1u << (row_len - 16)) - 1u : 0u);
          __m512i at[kNaRpbPermuteMaxK];
          for (Index j = 0; j < pl.K; ++j) at[j] = entries(j);
          for (Index r = 0; r < n_slots / pl.K; ++r) {
            const float* row = table + sc.rpb_base[i][std::size_t(r)];
            const __m512 lo = V(_mm512_maskz_loadu_ps(lo_mask, row)) * bias_scale;
            const __m512 hi = V(_mm512_maskz_loadu_ps(hi_mask, row + 16)) * bias_scale;
            float* s = S + r * pl.K * W;
            for (Index j = 0; j < pl.K; ++j)
              simd::store<Arch>(s + j * W, simd::fmadd<Arch>(simd::load<Arch>(s + j * W), c,
                                                          V(_mm512_permutex2var_ps(lo, at[j], hi))));
          }
        } else {
          for (Index j = 0; j < pl.K; ++j) {
            const __m512i at = entries(j);
            for (Index r = 0; r < n_slots / pl.K; ++r) {
              float* s = S + (r * pl.K + j) * W;
              const V bias = _mm512_i32gather_ps(at, table + sc.rpb_base[i][std::size_t(r)], sizeof(float));
              simd::store<Arch>(s, simd::fmadd<Arch>(simd::load<Arch>(s), c, bias * bias_scale));
            }
          }
        }
      } else
#endif
      {
        // Each lane's entry per slot, once per call (not per key row); where every lane has the same
        // entries (the tiles inside the axis) each slot's bias is one broadcast float. Against the
        // lane loop per key row and slot (AVX2, in-process alternation): fused 2-D 56x56 K 7 with rpb
        // 0.75-0.77 of the time (K 13 0.69-0.70, 3-D 0.74, 1-D L 4096 0.97): rpb costs 1.14x the op
        // without there (1.54x before). On AVX-512 the broadcast measured no faster than the permute.
        std::int32_t* at = sc.rpb_entry.data();  // [K, W]
        bool uniform = true;
        for (Index j = 0; j < pl.K; ++j)
          for (Index lane = 0; lane < W; ++lane) {
            at[j * W + lane] = std::int32_t(tile.rpb_first[lane] + window_slot(tile, lane, j));
            uniform = uniform && at[j * W + lane] == at[j * W];
          }
        alignas(64) float bias[kNaMaxLanes];
        for (Index r = 0; r < n_slots / pl.K; ++r) {
          const float* row = table + sc.rpb_base[i][std::size_t(r)];
          for (Index j = 0; j < pl.K; ++j) {
            V b;
            if (uniform) {
              b = V(row[at[j * W]]);
            } else {
              for (Index lane = 0; lane < W; ++lane) bias[lane] = row[at[j * W + lane]];
              b = simd::load<Arch>(bias);
            }
            float* s = S + (r * pl.K + j) * W;
            simd::store<Arch>(s, simd::fmadd<Arch>(simd::load<Arch>(s), c, b * bias_scale));
          }
        }
      }
    }
    if (tile.masked) {  // scaled here unless the rpb's FMA did (rpb comes without causal axes anyway)
      const V skip = simd::load<Arch>(tile.skip), minus_inf(-std::numeric_limits<float>::infinity());
      const V f = rpb ? V(1.0f) : c;
      for (Index r = 0; r < n_slots / pl.K; ++r)
        for (Index j = 0; j < pl.K; ++j) {
          float* s = S + (r * pl.K + j) * W;
          simd::store<Arch>(s, xsimd::select(V(float(j)) < skip, minus_inf, simd::load<Arch>(s) * f));
        }
    }
  }

  // The position in its window (along the last axis, from the window's first key) of the key that
  // lane's slot j holds; for masked slots (j < skip) a negative number. Wrapped tiles hold the
  // window in another order (NaPlan::slab_key); lanes past the axis end keep j.
  Index window_slot(const NaTile& tile, Index lane, Index j) const {
    if (lane >= tile.count) return j;
    if (tile.wrapped) return (tile.rot[lane] + j) % plan.K;
    return tile.masked ? j - Index(tile.skip[lane]) : j;
  }

  // Whether row i holds every slot of every lane's window (no causal cut): the kernel's slots are then
  // NATTEN's, in order, or (wrapped tiles) each last-axis run of K of them in another order.
  bool full_windows(const Scratch& sc, int i, const NaTile& tile) const {
    return !tile.masked && sc.n_slots[i] == plan.max_slots;
  }

  // Split qk: row i's logits (or their softmax) [n_slots, W] to rows dst + lane·stride of S_full floats
  // in NATTEN's slot order: a transpose (wrapped tiles: then each lane's runs of K slots rotated into
  // window order); per slot where windows are cut (causal), `fill` at the slots outside them (-inf
  // logits, 0 weights).
  void write_logits(Scratch& sc, int i, const NaTile& tile, float* dst, Index stride, float fill) const {
    const NaPlan<R>& pl = plan;
    const Index K = pl.K, S_full = pl.max_slots;
    const float* S = sc.s.data() + i * S_full * W;
    if (full_windows(sc, i, tile)) {
      if (!tile.wrapped) return transpose_lanes_out<Arch>(S, S_full, tile.count, dst, stride);
      // Wrapped: the lanes' rows in the kernel's order first; kernel slot j of lane holds window key
      // (rot + j) mod K, so window key m is kernel slot (m + K - rot) mod K.
      float* kernel_order = sc.rotated.data();  // [W, S_full]
      transpose_lanes_out<Arch>(S, S_full, tile.count, kernel_order, S_full);
      for (Index lane = 0; lane < tile.count; ++lane)
        for (Index r = 0; r < S_full; r += K)
          rotate_into(kernel_order + lane * S_full + r, K, (K - tile.rot[lane]) % K, dst + lane * stride + r);
      return;
    }
    for (Index lane = 0; lane < tile.count; ++lane) {
      float* row = dst + lane * stride;
      std::fill_n(row, S_full, fill);
      for (Index r = 0; r < sc.n_slots[i] / K; ++r)
        for (Index j = 0; j < K; ++j)
          if (const Index m = window_slot(tile, lane, j); m >= 0)
            row[sc.out_base[i][std::size_t(r)] + m] = S[(r * K + j) * W + lane];
    }
  }

  // dst[j] = src[(first + j) mod n] for j < n: on AVX-512 one permute when n <= 16 (runs of K slots
  // are short: the memmove calls of std::rotate_copy, or a loop wrapping its index, cost more than
  // the products they feed).
  static void rotate_into(const float* src, Index n, Index first, float* dst) {
#if defined(__AVX512F__)
    if constexpr (simd::is_avx512<Arch>) {
      if (n <= 16) {
        const __mmask16 valid = __mmask16((1u << n) - 1u);
        const __m512i size = _mm512_set1_epi32(int(n));
        __m512i from = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                        _mm512_set1_epi32(int(first)));
        from = _mm512_mask_sub_epi32(from, _mm512_cmpge_epi32_mask(from, size), from, size);
        _mm512_mask_storeu_ps(dst, valid, _mm512_permutexvar_ps(from, _mm512_maskz_loadu_ps(valid, src)));
        return;
      }
    }
#endif
    std::copy(src + first, src + n, dst);
    std::copy(src, src + first, dst + (n - first));
  }

  // Split av: row i's weights [n_slots, W] from rows src + lane·stride of S_full floats (NATTEN's
  // slot order), the inverse of write_logits (wrapped tiles: the rotated lanes from a copy); slots
  // outside a causal window weigh 0 (their weights are not read), and so do the lanes past the axis
  // end.
  void read_weights(Scratch& sc, int i, const NaTile& tile, const float* src, Index stride) const {
    const NaPlan<R>& pl = plan;
    const Index K = pl.K, S_full = pl.max_slots;
    float* S = sc.s.data() + i * S_full * W;
    if (full_windows(sc, i, tile)) {
      if (!tile.wrapped) return transpose_lanes_in<Arch>(src, stride, 0, tile.count, S_full, S, W);
      const float* rows[kNaMaxLanes];
      for (Index lane = 0; lane < W; ++lane) {
        const float* row = src + std::min(lane, tile.count - 1) * stride;
        rows[lane] = row;
        if (const Index rot = lane < tile.count ? tile.rot[lane] : 0; rot != 0) {
          float* copy = sc.rotated.data() + lane * S_full;
          for (Index r = 0; r < S_full; r += K) rotate_into(row + r, K, rot, copy + r);
          rows[lane] = copy;
        }
      }
      return transpose_rows_in<Arch>(rows, S_full, S, W);
    }
    std::fill_n(S, sc.n_slots[i] * W, 0.0f);
    for (Index lane = 0; lane < tile.count; ++lane) {
      const float* row = src + lane * stride;
      for (Index r = 0; r < sc.n_slots[i] / K; ++r)
        for (Index j = 0; j < K; ++j)
          if (const Index m = window_slot(tile, lane, j); m >= 0)
            S[(r * K + j) * W + lane] = row[sc.out_base[i][std::size_t(r)] + m];
    }
  }

  // Row i's logits -> exp2(S - m) in place (masks and rpb first); returns m and l = Σ exp2(S - m).
  void softmax(Scratch& sc, int i, const NaTile& tile, Index h, V& m, V& l) const {
    const NaPlan<R>& pl = plan;
    float* S = sc.s.data() + i * pl.max_slots * W;  // [n_slots, W]
    const Index n_slots = sc.n_slots[i];
    // Locals, not m and l: through the references GCC kept them in memory (the V type may alias the
    // floats of S), a store-to-load chain per slot that cost fused NA with rpb 5-9% of its time.
    V max(-std::numeric_limits<float>::infinity()), sum(0.0f);
    // S times q_scale minus the max: one FMA where the qk micro-kernels kept the max of q·k (the
    // queries unscaled; against a pass scaling each tile's queries, in-process alternation on the
    // Zen 5 VM in a noisy hour, minima: 56x56 K 7 0.95-1.00 of the time, 28x28 0.97); else after
    // the logits are formed (bias_and_mask) and their max taken. S·c - max·c rounds to within an
    // ulp of 0 above it at the max, where exp2_nonpositive is still exp2.
    V c(1.0f);
    if (fused_row_max(tile)) {
      c = V(pl.q_scale);
      max = simd::load<Arch>(sc.row_max.data() + i * W) * c;
    } else {
      bias_and_mask(sc, i, tile, h, V(simd::kLog2e));
      for (Index x = 0; x < n_slots; ++x) max = xsimd::max(max, simd::load<Arch>(S + x * W));
    }
    const V neg_max = -max;
    const auto exps = [&](auto exp2) {
      for (Index x = 0; x < n_slots; ++x) {
        const V e = exp2(simd::fmadd<Arch>(simd::load<Arch>(S + x * W), c, neg_max));
        simd::store<Arch>(S + x * W, e);
        sum += e;
      }
    };
    // Without masks or rpb no logit is -inf: the exp2 without the lower clamp.
    if (fused_row_max(tile))
      exps([](V x) { return simd::exp2_finite_nonpositive<Arch>(x); });
    else
      exps([](V x) { return simd::exp2_nonpositive<Arch>(x); });
    m = max, l = sum;
  }

  // Whether tile t's logits take pair_products: a tile of at most W/2 queries (the last of a row
  // whose length is not a multiple of W: 56 = 3·16 + 8) would leave half of every vector empty.
  // Against those tiles in the 3-row micro-kernels (in-process alternation, order rotated, bitwise
  // the same outputs): on the Zen 5 VM 56x56 K 7 0.97-0.98 of the time, K 13 0.98, 28x28 0.99
  // (12 = 16 - 4 queries in its last tile: not taken); on the lent Xeon VM 0.95-0.97, 56x48 1.00.
  bool pairs_tile(const NaTile& t) const {
    return simd::is_avx512<Arch> && W == 16 && t.count <= W / 2 && t.keys == NaTile::Keys::shifted &&
           plan.slot_step == 1 && mode != NaOutput::weighted_sum;
  }

  // The qk micro-kernels keep the rows' max of q·k unless rpb or causal masks change the logits
  // afterwards (and q_scale > 0, so that the max of q·k is that of the logits).
  bool fused_row_max(const NaTile& tile) const {
    return (mode == NaOutput::attention || mode == NaOutput::probabilities) && !rpb && !tile.masked && plan.q_scale > 0;
  }

  Index rpb_table_size() const {
    Index n = 1;
    for (int a = 0; a < R; ++a) n *= 2 * plan.params.kernel_size[std::size_t(a)] - 1;
    return n;
  }
};

}  // namespace tokenmix::attention::detail
