#pragma once
// SIMD kernel of the Mamba-1 selective scan (the equations are in reference/selective_scan.hpp).
//
// Vectorized over channels: one vector holds W = lanes<Arch> consecutive channels of one group, so
//  - exp(dt·A) for the W channels of one state index n is ONE vector exp2 (of dt · A·log2(e), the
//    CUDA kernel's formulation), i.e. W·N scalar exps per token become N vector exps;
//  - B[t, g, n] and C[t, g, n] are shared by the W channels: a broadcast, not a gather;
//  - while a block is scanned its state h[n] stays in registers (N specialised at compile time for
//    1, 4, 8, 16 and 32), and y = sum_n h[n]·C[n] accumulates lane-wise: no horizontal reductions.
// Memory: u/delta/z/out are [B, L, D], so one channel block walks L rows D floats apart; walking all
// of L for one block before the next touches a new page per token and array. Instead a thread
// takes its blocks in tiles of up to a whole row (blocks_per_tile) and the tokens in chunks of
// kTokensPerChunk: every block of the tile advances one chunk (its state saved in scratch between
// chunks), then the next chunk. While a block's chunk runs, the rows of the next block are
// prefetched (strided rows defeat the hardware prefetcher).
// Per token, dt = softplus(delta + bias) and dt·x of the NEXT token are computed during this
// token's recurrence (software pipelining), so their latency hides behind the N exps.
// A block never straddles two groups (channels of one block share B and C). Blocks narrower than W
// (the end of a group) use masked / zero-padded loads, so every lane computes finite values, and
// only the valid lanes are written.
//
// Work item = (batch b, group g, channel block j). Each lane's arithmetic is the same whatever the
// tiling, chunking or thread, so results are bitwise identical for any thread count.
//
// Modes (compile-time, ScanMode; the recurrence and the y readout are the same code in all four):
//  - forward: out only (ssm::selective_scan, the 2-D scans).
//  - forward_resampled: out = y + a 4-tap resampling of another tensor, in the token loop
//    (SelectiveScanProblem::resample: MSVMamba's upsampled low-resolution branch).
//  - states: also every state h_t into states [B, L, D, N] (ssm::selective_scan_states). Per token
//    the N state vectors ([N, W]: lane = channel) are staged in L1 and written as the [W, N] block
//    states[b, t, d0 : d0 + W, :] (contiguous): a direct store for N = 1, an in-register W x W
//    transpose per W state indices when W divides N (x86), a scalar transpose otherwise.
//  - local_bidirectional: LBMamba (ssm::local_bidirectional_scan). The forward pass keeps, for the
//    tokens of the current window of M, the decays a_t [N, W], dt·u, the forward readout
//    y_t = <C_t, hL_t> + D·u_t and the gate ((N + 3)·W floats per token, for a group of whole
//    windows of ~16 tokens: L1); after the group's last token a reverse pass over those slots
//    computes, per window, excl_t = a_t·r_{t+1}, r_t = excl_t + b_t (r in registers, 0 after the
//    window's last token) and writes out_t = (y_t + <C_t, excl_t>)·gate_t. Chunks are a multiple
//    of M tokens long (M when M > 64), so windows never straddle chunks. No second pass over memory
//    and no second exp: about 3 FMA-pipe operations per (t, n) on top of the forward scan's ~14.

#include <algorithm>
#include <type_traits>
#include <utility>  // std::integer_sequence

#include "tokenmix/core/tensor.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace tokenmix::ssm::detail {

// The source rows of one output row of a resampling (SelectiveScanProblem::resample) and their
// weights: out = Σ_k weight[k] · src[row[k]], summed in this order (k = 0..3).
struct ResampleTap {
  Index row[4];
  float weight[4];
};

// One validated call as raw pointers (row-major, token-major).
struct SelectiveScanProblem {
  Index batch, length, channels, state, groups;
  const float* u;              // [B, L, D]
  const float* delta;          // [B, L, D]
  const float* A;              // [D, N]
  const float* B;              // [B, L, G, N], or [D, N] when B_time_invariant
  const float* C;              // [B, L, G, N], or [D, N] when C_time_invariant
  bool B_time_invariant, C_time_invariant;
  const float* D;              // [D] or nullptr
  const float* z;              // [B, L, D] or nullptr
  const float* delta_bias;     // [D] or nullptr
  bool delta_softplus;
  const float* initial_state;  // [B, D, N] or nullptr
  float* out;                  // [B, L, D]
  float* last_state;           // [B, D, N] or nullptr
  float* states = nullptr;     // [B, L, D, N]: every state h_t (ScanMode::states)
  Index window = 1;            // M >= 1: LBMamba window (ScanMode::local_bidirectional)

  // Grid layout (forward mode only): ssm::selective_scan_2d scans a path through an image in place,
  // without copying it into a sequence. u, delta, z and out are then [B, rows_per_batch, *] with rows
  // u_stride, delta_stride, z_stride and out_stride floats apart (each pointer at the first channel
  // this problem scans); token t reads row path[t] of u and z and writes row path[t] of out, and
  // reads row param_path[t] of delta. A null path means row t; a row of -1 is a padding cell (zeros
  // in, nothing out). out_accumulate: out += y (merging directions) instead of out = y, from token
  // out_written_steps on (the tokens before it write: they visit fresh cells).
  // Zeros (the defaults) mean the dense [B, L, D] layout; with_dense_layout_defaults fills them in.
  Index rows_per_batch = 0, u_stride = 0, delta_stride = 0, z_stride = 0, out_stride = 0;
  const Index* path = nullptr;        // [L]
  const Index* param_path = nullptr;  // [L]
  bool out_accumulate = false;
  Index out_written_steps = 0;
  // Grid layout, selective B and C: bc_in_grid reads them in place too, at row param_path[t] (as
  // delta) of [B, rows_per_batch, *] grids with rows bc_stride floats apart (B and C at this
  // problem's group; a padding row reads zeros); otherwise they are [B, L, G, N] by token.
  bool bc_in_grid = false;
  Index bc_stride = 0;
  // Forward mode, dense layout: out[row] = y·gate + a weighted sum of 4 rows of `resample`, the
  // row's taps, instead of out's old value (out_accumulate off): MSVMamba's bilinearly upsampled
  // low-resolution branch added as the scan writes out (selective_scan_2d.hpp).
  const float* resample = nullptr;             // [B, resample_rows, resample_stride] at this problem's first channel
  Index resample_rows = 0, resample_stride = 0;
  const ResampleTap* resample_taps = nullptr;  // [rows_per_batch]
};

// p with the unset layout fields (rows_per_batch, strides) of the dense [B, L, D] layout.
inline SelectiveScanProblem with_dense_layout_defaults(SelectiveScanProblem p) {
  if (p.rows_per_batch == 0) p.rows_per_batch = p.length;
  if (p.bc_stride == 0) p.bc_stride = p.groups * p.state;
  for (Index* stride : {&p.u_stride, &p.delta_stride, &p.z_stride, &p.out_stride})
    if (*stride == 0) *stride = p.channels;
  return p;
}

// forward_resampled: the forward mode with out = y·gate + the resample (SelectiveScanProblem::resample),
// a mode of its own so that only its user (multiscale_scan_2d) compiles its token loop.
enum class ScanMode { forward, forward_resampled, states, local_bidirectional };

// Where the kernel's token loop finds a token's rows (SelectiveScanKernel::chunk).
enum class RowLookup { per_token, chunk_offsets };

template <class Arch, ScanMode Mode = ScanMode::forward>
struct SelectiveScanKernel {
  using V = simd::vfloat<Arch>;
  static constexpr Index W = static_cast<Index>(simd::lanes<Arch>);
  static constexpr Index kTokensPerChunk = 64;
  static constexpr bool kForward = Mode == ScanMode::forward || Mode == ScanMode::forward_resampled;
  static constexpr bool kResampled = Mode == ScanMode::forward_resampled;
  static constexpr bool kStates = Mode == ScanMode::states;
  static constexpr bool kLocalBidirectional = Mode == ScanMode::local_bidirectional;
  // Tokens per chunk: kTokensPerChunk, or for the local-bidirectional mode the largest multiple of
  // the window M that fits (M itself when M > kTokensPerChunk), so that chunks start at window starts.
  static Index tokens_per_chunk(const SelectiveScanProblem& p) {
    if constexpr (kLocalBidirectional)
      return p.window <= kTokensPerChunk ? p.window * (kTokensPerChunk / p.window) : p.window;
    else
      return kTokensPerChunk;
  }
  // Floats of the local-bidirectional window buffer: one slot per token of a window (a window never
  // holds more than L tokens), each a_t [N, W], dt·u [W], y [W], gate [W]; plus r [N, W] when N
  // is not specialised. Zero for the other modes; states mode stages one [N, W] block.
  static Index slot_floats(const SelectiveScanProblem& p) { return (p.state + 3) * W; }
  static Index mode_floats(const SelectiveScanProblem& p) {
    if constexpr (kLocalBidirectional)
      return std::min(window_groups(p.window) * p.window, std::max<Index>(p.length, 1)) * slot_floats(p) +
             p.state * W;
    else if constexpr (kStates)
      return p.state * W;
    else
      return 0;
  }
  // A tile holds up to 256 KiB of per-block state (A·log2 e and h), L2-resident, and at most 256
  // blocks (4096 channels: a whole row of most models, so each page of u/delta/z/out is visited once
  // per chunk instead of once per chunk and tile).
  static Index blocks_per_tile(const SelectiveScanProblem& p) {
    return std::max<Index>(1, std::min<Index>(256, (Index(256) << 10) / (2 * p.state * W * Index(sizeof(float)))));
  }

  static Index blocks_per_group(const SelectiveScanProblem& p) { return (p.channels / p.groups + W - 1) / W; }
  static Index num_items(const SelectiveScanProblem& p) { return p.batch * p.groups * blocks_per_group(p); }
  // Floats of scratch one thread needs (whatever its range of items).
  static Index scratch_floats(const SelectiveScanProblem& p) {
    return blocks_per_tile(p) * 2 * p.state * W + (2 * p.state + kPadVectors) * W + zero_floats(p) + mode_floats(p);
  }

  struct ItemRange {
    Index first, last;
  };
  // At most this many problems run interleaved (run_items).
  static constexpr int kMaxInterleaved = 4;

  // Runs items [first, last) of p. scratch: scratch_floats(p) floats.
  static void run_items(const SelectiveScanProblem& p, Index first, Index last, float* scratch) noexcept {
    const ItemRange range{first, last};
    run_items(&p, 1, &range, scratch);
  }
  // Runs items ranges[k] of problems[k], k < count <= kMaxInterleaved, interleaved chunk by chunk:
  // the first chunk of every problem's first tile, then the second chunk of each, and so on (then
  // the second tiles). The problems must not write the same out values (their order of writes is
  // not theirs alone any more); the forward mode only (one chunk length). Two directions of a 2-D
  // scan over neighbouring channels of the same cells, run so, read each cache line once where
  // run one after the other each fetches its neighbour's lines too (selective_scan_2d.hpp).
  // scratch: the sum of the problems' scratch_floats.
  static void run_items(const SelectiveScanProblem* problems, int count, const ItemRange* ranges,
                        float* scratch) noexcept {
    TileScan scans[kMaxInterleaved];
    for (Index tile = 0;; ++tile) {  // the tile-th tile of every problem's range
      int active = 0;
      float* problem_scratch = scratch;
      for (int k = 0; k < count; ++k) {
        const SelectiveScanProblem& p = problems[k];
        const Index tile_first = ranges[k].first + tile * blocks_per_tile(p);
        if (tile_first < ranges[k].last)
          scans[active++].start(p, tile_first, std::min(ranges[k].last, tile_first + blocks_per_tile(p)),
                                problem_scratch);
        problem_scratch += scratch_floats(p);
      }
      if (active == 0) return;
      Index rounds = 0;
      for (int k = 0; k < active; ++k) rounds = std::max(rounds, scans[k].chunks());
      for (Index round = 0; round < rounds; ++round)
        for (int k = 0; k < active; ++k) {
          if (round >= scans[k].chunks()) continue;
          // The chunk that runs after this one: the next scan's in this round, else the first's in the next.
          int next = k + 1;
          while (next < active && round >= scans[next].chunks()) ++next;
          Index next_round = round;
          if (next == active) {
            next_round = round + 1, next = 0;
            while (next < active && next_round >= scans[next].chunks()) ++next;
          }
          scans[k].advance(round, next < active ? &scans[next] : nullptr, next_round);
        }
      for (int k = 0; k < active; ++k) scans[k].finish();
    }
  }

 private:
  static constexpr Index kPadVectors = 8;  // scratch vectors for zero-padded partial loads / stores
  // The row a padding cell reads: W floats of u / delta / z, N of B / C (grids read in place).
  static Index zero_floats(const SelectiveScanProblem& p) { return (std::max(p.state, W) + W - 1) / W * W; }

  struct Block {
    Index b, g, d0, width;  // batch, group, first channel, valid lanes (<= W)
  };
  static Block locate(const SelectiveScanProblem& p, Index item) {
    const Index bpg = blocks_per_group(p), per_group = p.channels / p.groups;
    const Index j = item % bpg, g = (item / bpg) % p.groups;
    return {item / (p.groups * bpg), g, g * per_group + j * W, std::min(W, per_group - j * W)};
  }

  // Where the tokens t0 + t (t chunk-relative) of one block read u, delta, z, B, C and write out:
  // row path[t] (param_path[t] for delta, and for B and C when they are grids) of the batch's grid,
  // or row t0 + t in the dense layout. Each pointer is at the block's first channel (B and C at its
  // group); a padding row (-1) reads `zeros` and writes nothing.
  struct Rows {
    const float *u, *delta, *z;
    float* out;
    const float *B, *C;              // selective B / C, or nullptr
    const Index *path, *param_path;  // chunk-relative, or nullptr: row t
    const Index* bc_path;            // param_path when B and C are grids, else nullptr: row t
    Index u_stride, delta_stride, z_stride, out_stride, bc_stride;
    const float* zeros;  // [max(W, N)]
    const ResampleTap* taps;  // the resample's taps of row t0 + t (dense layout), or nullptr
    const float* resample;    // the batch's resample rows at the block's first channel
    Index resample_stride;

    static TOKENMIX_ALWAYS_INLINE Index row(const Index* rows, Index t) noexcept { return rows ? rows[t] : t; }
    TOKENMIX_ALWAYS_INLINE const float* u_row(Index t) const noexcept {
      const Index r = row(path, t);
      return r < 0 ? zeros : u + r * u_stride;
    }
    TOKENMIX_ALWAYS_INLINE const float* delta_row(Index t) const noexcept {
      const Index r = row(param_path, t);
      return r < 0 ? zeros : delta + r * delta_stride;
    }
    TOKENMIX_ALWAYS_INLINE const float* z_row(Index t) const noexcept {
      const Index r = row(path, t);
      return r < 0 ? zeros : z + r * z_stride;
    }
    TOKENMIX_ALWAYS_INLINE float* out_row(Index t) const noexcept {
      const Index r = row(path, t);
      return r < 0 ? nullptr : out + r * out_stride;
    }
    TOKENMIX_ALWAYS_INLINE const float* B_row(Index t) const noexcept {  // [N]
      const Index r = row(bc_path, t);
      return r < 0 ? zeros : B + r * bc_stride;
    }
    TOKENMIX_ALWAYS_INLINE const float* C_row(Index t) const noexcept {  // [N]
      const Index r = row(bc_path, t);
      return r < 0 ? zeros : C + r * bc_stride;
    }
  };
  static Rows rows_of(const SelectiveScanProblem& p, const Block& blk, Index t0, const float* zeros) noexcept {
    const Index batch_row = blk.b * p.rows_per_batch;
    const Index first = batch_row + (p.path ? 0 : t0), param_first = batch_row + (p.param_path ? 0 : t0);
    // B / C by token ([B, L, G, N]) or, as grids, at delta's rows.
    const Index bc_first = p.bc_in_grid ? param_first : blk.b * p.length + t0;
    const Index bc_offset = bc_first * p.bc_stride + blk.g * p.state;
    return {p.u + first * p.u_stride + blk.d0,
            p.delta + param_first * p.delta_stride + blk.d0,
            p.z ? p.z + first * p.z_stride + blk.d0 : nullptr,
            p.out + first * p.out_stride + blk.d0,
            p.B_time_invariant ? nullptr : p.B + bc_offset,
            p.C_time_invariant ? nullptr : p.C + bc_offset,
            p.path ? p.path + t0 : nullptr,
            p.param_path ? p.param_path + t0 : nullptr,
            p.bc_in_grid && p.param_path ? p.param_path + t0 : nullptr,
            p.u_stride, p.delta_stride, p.z_stride, p.out_stride, p.bc_stride, zeros,
            p.resample_taps ? p.resample_taps + t0 : nullptr,
            p.resample ? p.resample + blk.b * p.resample_rows * p.resample_stride + blk.d0 : nullptr,
            p.resample_stride};
  }

  // The rows of one chunk's tokens as offsets (floats) from the bases of Rows: token t reads u at
  // rows.u + u[t], and so on. Shared by all the blocks of a tile: looking a grid path up per token
  // and block (a load, a padding test and a multiply per operand) cost 5-8% of an N = 1 scan, and
  // one token loop for the dense and the grid layouts keeps the kernel's instantiations (and its
  // users' compile times) as they were. The dense layout's offsets are the same for every chunk;
  // grid chunks with a padding cell have none (the token loop then looks each row up).
  struct ChunkOffsets {
    Index u[kTokensPerChunk], delta[kTokensPerChunk], z[kTokensPerChunk], out[kTokensPerChunk],
        bc[kTokensPerChunk];
    // Fills the offsets of tokens [t0, t0 + tokens) of p; false when one of them is a padding cell.
    // Loops without early exits, one per array, so that they vectorise (scalar, the grid's cost 6%
    // of a chunk of GroupMamba's 3 blocks).
    bool compute(const SelectiveScanProblem& p, Index t0, Index tokens) noexcept {
      const Index* path = p.path ? p.path + t0 : nullptr;
      const Index* param_path = p.param_path ? p.param_path + t0 : nullptr;
      const Index* bc_path = p.bc_in_grid ? param_path : nullptr;
      Index lowest = 0;
      if (path)
        for (Index t = 0; t < tokens; ++t) lowest = std::min(lowest, path[t]);
      if (param_path)
        for (Index t = 0; t < tokens; ++t) lowest = std::min(lowest, param_path[t]);
      if (lowest < 0) return false;
      for (Index t = 0; t < tokens; ++t) u[t] = (path ? path[t] : t) * p.u_stride;
      if (p.z)
        for (Index t = 0; t < tokens; ++t) z[t] = (path ? path[t] : t) * p.z_stride;
      for (Index t = 0; t < tokens; ++t) out[t] = (path ? path[t] : t) * p.out_stride;
      for (Index t = 0; t < tokens; ++t) delta[t] = (param_path ? param_path[t] : t) * p.delta_stride;
      for (Index t = 0; t < tokens; ++t) bc[t] = (bc_path ? bc_path[t] : t) * p.bc_stride;
      return true;
    }
  };

  // Rows to prefetch (into L2) while a block's chunk runs: at token t < count, the rows of token t
  // of the next block (strided rows defeat the hardware prefetcher). at(t) finds them at `offsets`
  // when the next block is in the same chunk and the chunk has them (lookup(t) always looks them up).
  struct RowPrefetch {
    Rows rows{};
    Index count = 0;
    const ChunkOffsets* offsets = nullptr;
    TOKENMIX_ALWAYS_INLINE void at(Index t) const noexcept {
      if (!offsets) return lookup(t);
      if (t >= count) return;
      __builtin_prefetch(rows.delta + offsets->delta[t], 0, 2);
      __builtin_prefetch(rows.u + offsets->u[t], 0, 2);
      if (rows.z) __builtin_prefetch(rows.z + offsets->z[t], 0, 2);
      __builtin_prefetch(rows.out + offsets->out[t], 0, 2);
    }
    TOKENMIX_ALWAYS_INLINE void lookup(Index t) const noexcept {
      if (t >= count) return;
      __builtin_prefetch(rows.delta_row(t), 0, 2);
      __builtin_prefetch(rows.u_row(t), 0, 2);
      if (rows.z) __builtin_prefetch(rows.z_row(t), 0, 2);
      if (float* o = rows.out_row(t)) __builtin_prefetch(o, 0, 2);
    }
  };

  // One tile of a problem (items [first, last), at most blocks_per_tile) scanned chunk by chunk:
  // start, advance(c) for each chunk c < chunks() in order, finish. run_items interleaves the chunks
  // of several tiles.
  struct TileScan {
    const SelectiveScanProblem* p = nullptr;
    Index first = 0, last = 0, chunk_len = 0;
    float *A2 = nullptr, *h = nullptr, *shared = nullptr;  // in the tile's scratch, see start
    // The forward mode's rows by offsets (the other modes look them up: dense, and one token loop
    // each). Dense: computed once, for every chunk.
    ChunkOffsets offsets;
    bool forward_offsets = false, dense_offsets = false;

    Block blk(Index i) const noexcept { return locate(*p, first + i); }
    Index chunks() const noexcept { return (p->length + chunk_len - 1) / chunk_len; }

    // scratch: scratch_floats(problem) floats.
    void start(const SelectiveScanProblem& problem, Index first_item, Index last_item, float* scratch) noexcept {
      p = &problem, first = first_item, last = last_item, chunk_len = tokens_per_chunk(problem);
      const Index N = problem.state, blocks = last - first;
      A2 = scratch;                 // [tile, N, W] A[d, n]·log2(e) of each block's channels
      h = A2 + blocks * N * W;      // [tile, N, W] each block's state between chunks
      shared = h + blocks * N * W;  // B/C [2N, W], pads [kPadVectors, W], zeros, mode_floats(p)
      for (Index i = 0; i < blocks; ++i) {
        transpose_in(problem.A, blk(i).d0, blk(i).width, N, A2 + i * N * W);
        for (Index k = 0; k < N * W; ++k) A2[i * N * W + k] *= 1.44269504088896341f;  // exp(x) = exp2(x·log2(e))
        if (problem.initial_state)
          transpose_in(problem.initial_state + blk(i).b * problem.channels * N, blk(i).d0, blk(i).width, N,
                       h + i * N * W);
        else
          std::fill(h + i * N * W, h + (i + 1) * N * W, 0.0f);
      }
      forward_offsets = kForward && chunk_len == kTokensPerChunk;
      dense_offsets = forward_offsets && !problem.path && offsets.compute(problem, 0, chunk_len);
    }

    // Scans chunk c of every block of the tile. `next` (null: none) scans chunk next_c right after.
    void advance(Index c, const TileScan* next, Index next_c) noexcept {
      const SelectiveScanProblem& q = *p;
      const Index N = q.state, blocks = last - first, t0 = c * chunk_len;
      const Index tokens = std::min(q.length - t0, chunk_len);
      const bool use_offsets = dense_offsets || (forward_offsets && q.path && offsets.compute(q, t0, tokens));
      for (Index i = 0; i < blocks; ++i) {
        // While this block's chunk runs, prefetch the rows of the next one (strided rows defeat the
        // hardware prefetcher; a chunk is long enough to hide their latency).
        RowPrefetch prefetch;
        if (i + 1 < blocks)
          prefetch = {rows_of(q, blk(i + 1), t0, nullptr), tokens, use_offsets ? &offsets : nullptr};
        else if (next) {
          const Index next_t0 = next_c * next->chunk_len;
          prefetch = {rows_of(*next->p, next->blk(0), next_t0, nullptr),
                      std::min(next->chunk_len, next->p->length - next_t0), nullptr};
        }
        scan_chunk(q, blk(i), t0, tokens, A2 + i * N * W, h + i * N * W, shared, prefetch,
                   use_offsets ? &offsets : nullptr);
      }
    }

    void finish() const noexcept {
      if (!p->last_state) return;
      const Index N = p->state;
      for (Index i = 0; i < last - first; ++i)
        transpose_out(h + i * N * W, blk(i).d0, blk(i).width, N, p->last_state + blk(i).b * p->channels * N);
    }
  };

  static void scan_chunk(const SelectiveScanProblem& p, const Block& blk, Index t0, Index tokens, const float* A2,
                         float* h, float* shared, const RowPrefetch& pf, const ChunkOffsets* offsets) noexcept {
    if (!p.B_time_invariant && !p.C_time_invariant) {
      switch (p.state) {
        // N = 1: VMamba v2, GroupMamba, A2Mamba
        case 1: return chunk<1, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
        case 4: return chunk<4, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
        case 8: return chunk<8, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
        case 16: return chunk<16, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
        case 32: return chunk<32, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
        default: return chunk<0, true, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
      }
    }
    if constexpr (!kResampled) {  // which has selective B and C (run_scan_kernel checks)
      if (!p.B_time_invariant) return chunk<0, true, false>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
      if (!p.C_time_invariant) return chunk<0, false, true>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
      return chunk<0, false, false>(p, blk, t0, tokens, A2, h, shared, pf, offsets);
    }
  }

  // dst[n * W + lane] = src[(d0 + lane) * N + n] for lane < width, 0 beyond (a [W, N] -> [N, W] transpose).
  static void transpose_in(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < W; ++lane) dst[n * W + lane] = lane < width ? src[(d0 + lane) * N + n] : 0.0f;
  }
  static void transpose_out(const float* src, Index d0, Index width, Index N, float* dst) noexcept {
    for (Index n = 0; n < N; ++n)
      for (Index lane = 0; lane < width; ++lane) dst[(d0 + lane) * N + n] = src[n * W + lane];
  }
  // f(v_0, ..., v_{NC-1}) with NC zero vectors as separate arguments.
  template <int... I, class F>
  static TOKENMIX_ALWAYS_INLINE void with_registers(std::integer_sequence<int, I...>, F&& f) noexcept {
    f(((void)I, V(0.0f))...);
  }

  // Writes the staged states stage [N, W] (lane = channel) as dst[lane·N + n] for lane < width:
  // states[b, t, d0 + lane, n], a [width, N] block, contiguous.
  static TOKENMIX_ALWAYS_INLINE void write_states(const float* stage, Index N, Index width, float* dst,
                                                  float* pad) noexcept {
    if (N == 1) return simd::store_upto<Arch>(dst, simd::load<Arch>(stage), width, pad);
    if constexpr (simd::has_square_transpose<Arch>) {
      if (N % W == 0) {
        for (Index j = 0; j < N; j += W) simd::transpose_square<Arch>(stage + j * W, W, dst + j, N, width);
        return;
      }
    }
    for (Index lane = 0; lane < width; ++lane)
      for (Index n = 0; n < N; ++n) dst[lane * N + n] = stage[n * W + lane];
  }

  // Scans tokens [t0, t0 + tokens) of one block, state h [N, W] in and out.
  // NC: N known at compile time (state in registers), or 0 (state stays in h).
  // VarB / VarC: selective [B, L, G, N] operand (broadcast per token) vs time-invariant [D, N].
  // offsets: the chunk's rows (the forward mode, dense or grid), or nullptr: looked up per token.
  template <int NC, bool VarB, bool VarC>
  static void chunk(const SelectiveScanProblem& p, const Block& blk, Index t0, Index tokens, const float* A2, float* h,
                    float* shared, const RowPrefetch& pf, const ChunkOffsets* offsets) noexcept {
    const Index N = NC > 0 ? NC : p.state, width = blk.width, stride = p.channels;
    float* B_ti = shared;        // [N, W] time-invariant B (unused when VarB)
    float* C_ti = B_ti + N * W;  // [N, W] time-invariant C (unused when VarC)
    float* pad = C_ti + N * W;   // [kPadVectors, W] zero-padded copies for partial blocks
    float* zeros = pad + kPadVectors * W;  // [zero_floats(p)] the input row of a padding cell
    // states: stage [N, W]. local_bidirectional: r [N, W] (when NC = 0), then the window's slots,
    // slot k = [N + 3, W]: a_t [N, W], dt·u [W], y [W], gate [W] of token window_first + k.
    float* mode_buf = zeros + zero_floats(p);
    std::fill(zeros, mode_buf, 0.0f);
    if constexpr (!VarB) transpose_in(p.B, blk.d0, width, N, B_ti);
    if constexpr (!VarC) transpose_in(p.C, blk.d0, width, N, C_ti);
    const Rows rows = rows_of(p, blk, t0, zeros);
    // The dense layout (the only one of the states and local-bidirectional modes): row t at + t·D.
    const Index row0 = (blk.b * p.length + t0) * stride + blk.d0;  // (b, t0, d0) in [B, L, D]
    float* out = p.out + row0;
    // B[b, t0 + t, g, :] at B_rows + t·bc_row unless B and C are grids read along param_path.
    const Index bc_row = p.bc_stride;
    const float* B_rows = VarB ? rows.B : nullptr;
    const float* C_rows = VarC ? rows.C : nullptr;
    const V bias = p.delta_bias ? simd::load_upto<Arch>(p.delta_bias + blk.d0, width, pad) : V(0.0f);
    const V skip = p.D ? simd::load_upto<Arch>(p.D + blk.d0, width, pad + W) : V(0.0f);
    // states[b, t0 + t, d0, 0] at states_rows + t·D·N
    float* states_rows = kStates ? p.states + row0 * N : nullptr;
    const Index slot_stride = (N + 3) * W;
    float* slots = mode_buf + N * W;
    const Index window = p.window;
    // Chunk-relative first token whose output is added to out (out_accumulate).
    const Index add_from = p.out_accumulate ? std::clamp<Index>(p.out_written_steps - t0, 0, tokens) : tokens;
    const Index group_len = window_groups(window) * window;  // tokens per reverse call (whole windows)

    // dt = softplus(delta + bias) and dt·x of token t. They do not depend on the state, so token
    // t + 1's are computed during token t's recurrence (software pipelining): the softplus latency
    // (exp, log, divide) then hides behind the N exps instead of stalling them.
    auto inputs = [&](const float* delta_row, const float* u_row, V& dt, V& dt_x, V& x) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      V d = simd::load_upto<Arch>(delta_row, width, pad + 2 * W) + bias;
      if (p.delta_softplus) d = simd::softplus<Arch>(d);
      dt = d;
      x = simd::load_upto<Arch>(u_row, width, pad + 3 * W);
      dt_x = d * x;
    };

    // The token loop; update_state(update) applies h[n] = update(n, h[n]) to every state vector.
    // Lookup (compile time) says where token t's rows are: RowLookup::chunk_offsets (`offsets`) or
    // per_token (Rows' accessors: the dense layout of the states and local-bidirectional modes, and
    // grid chunks with padding cells, whose B and C are looked up along bc_path in the forward mode).
    auto scan_tokens_with = [&](auto lookup, auto&& update_state) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      constexpr bool Offsets = decltype(lookup)::value == RowLookup::chunk_offsets;
      constexpr bool BcGrid = !Offsets && kForward;  // B and C by Rows' accessors
      auto delta_row = [&](Index t) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        return Offsets ? rows.delta + offsets->delta[t] : rows.delta_row(t);
      };
      auto u_row = [&](Index t) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        return Offsets ? rows.u + offsets->u[t] : rows.u_row(t);
      };
      auto out_row = [&](Index t) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        return Offsets ? rows.out + offsets->out[t] : rows.out_row(t);
      };
      V dt, dt_x, x;  // x = u of the token (the D skip)
      if (tokens > 0) inputs(delta_row(0), u_row(0), dt, dt_x, x);
      Index window_first = 0;  // local_bidirectional: chunk-relative first token of the current window
      for (Index t = 0; t < tokens; ++t) {
        if constexpr (Offsets) pf.at(t);
        else pf.lookup(t);  // no test of pf.offsets per token where there are none
        const float* z_row = !p.z ? nullptr : Offsets ? rows.z + offsets->z[t] : rows.z_row(t);
        const V gate = p.z ? simd::silu<Arch>(simd::load_upto<Arch>(z_row, width, pad + 4 * W)) : V(1.0f);
        V dt_next = dt, dt_x_next = dt_x, x_next = x;
        if (t + 1 < tokens) inputs(delta_row(t + 1), u_row(t + 1), dt_next, dt_x_next, x_next);
        // [N] B and C of token t0 + t, group g: by token (rows bc_row apart) or looked up in the grid.
        const float* B_t = !VarB      ? nullptr
                           : Offsets ? B_rows + offsets->bc[t]
                           : BcGrid  ? rows.B_row(t)
                                     : B_rows + t * bc_row;
        const float* C_t = !VarC      ? nullptr
                           : Offsets ? C_rows + offsets->bc[t]
                           : BcGrid  ? rows.C_row(t)
                                     : C_rows + t * bc_row;
        float* slot = kLocalBidirectional ? slots + (t - window_first) * slot_stride : nullptr;
        // Two partial sums of y over even and odd n halve the dependency chain of the readout.
        V y_even(0.0f), y_odd(0.0f);
        update_state([&](Index n, V state) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          const V decay = simd::exp2<Arch>(dt * simd::load<Arch>(A2 + n * W));
          const V Bn = VarB ? V(B_t[n]) : simd::load<Arch>(B_ti + n * W);
          const V Cn = VarC ? V(C_t[n]) : simd::load<Arch>(C_ti + n * W);
          state = simd::fmadd<Arch>(decay, state, dt_x * Bn);
          if constexpr (kStates) simd::store<Arch>(mode_buf + n * W, state);
          if constexpr (kLocalBidirectional) simd::store<Arch>(slot + n * W, decay);
          V& acc = (n & 1) ? y_odd : y_even;
          acc = simd::fmadd<Arch>(state, Cn, acc);
          return state;
        });
        V y = y_even + y_odd;
        if (p.D) y = simd::fmadd<Arch>(x, skip, y);
        if constexpr (kLocalBidirectional) {
          simd::store<Arch>(slot + N * W, dt_x);
          simd::store<Arch>(slot + (N + 1) * W, y);
          simd::store<Arch>(slot + (N + 2) * W, gate);
          // Chunks start at window starts and are a multiple of M long (but the last). The reverse
          // pass runs once per group of whole windows (group_len tokens, ~16) or at the chunk's end.
          if (t + 1 - window_first == group_len || t + 1 == tokens) {
            const Index first = window_first;
            reverse_windows<NC, VarB, VarC>(slots, N, window, t + 1 - window_first,
                                            VarB ? B_rows + first * bc_row : nullptr,
                                            VarC ? C_rows + first * bc_row : nullptr, bc_row, B_ti, C_ti,
                                            out + first * stride, stride, width, pad + 6 * W, mode_buf);
            window_first = t + 1;
          }
        } else {
          if (float* o = out_row(t)) {
            if constexpr (kResampled) {
              const ResampleTap& tap = rows.taps[t];
              auto source = [&](int k) TOKENMIX_ALWAYS_INLINE_LAMBDA {
                return simd::load_upto<Arch>(rows.resample + tap.row[k] * rows.resample_stride, width, pad + 5 * W);
              };
              V r = V(tap.weight[0]) * source(0);
              r = simd::fmadd<Arch>(V(tap.weight[1]), source(1), r);
              r = simd::fmadd<Arch>(V(tap.weight[2]), source(2), r);
              r = simd::fmadd<Arch>(V(tap.weight[3]), source(3), r);
              y = simd::fmadd<Arch>(y, gate, r);
            } else if (t >= add_from) {
              y = simd::fmadd<Arch>(y, gate, simd::load_upto<Arch>(o, width, pad + 6 * W));
            } else {
              y = y * gate;
            }
            simd::store_upto<Arch>(o, y, width, pad + 6 * W);
          }
          if constexpr (kStates) write_states(mode_buf, N, width, states_rows + t * stride * N, pad + 7 * W);
        }
        dt = dt_next, dt_x = dt_x_next, x = x_next;
      }
    };
    auto scan_tokens = [&](auto&& update_state) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      using Lookup = RowLookup;
      if constexpr (kResampled) {  // the dense layout, whose chunks always have their offsets
        scan_tokens_with(std::integral_constant<Lookup, Lookup::chunk_offsets>{}, update_state);
      } else {
        if constexpr (kForward) {
          if (offsets) return scan_tokens_with(std::integral_constant<Lookup, Lookup::chunk_offsets>{}, update_state);
        }
        scan_tokens_with(std::integral_constant<Lookup, Lookup::per_token>{}, update_state);
      }
    };

    if constexpr (NC > 0) {
      // The NC state vectors are NC separate local variables (a parameter pack), not an array: the
      // compiler keeps them in registers, where an array stays in memory (and its stores can
      // falsely alias the strided input loads, 4K aliasing, which costs up to 50%).
      with_registers(std::make_integer_sequence<int, NC>{}, [&](auto... h_reg) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        Index n = 0;
        ((h_reg = simd::load<Arch>(h + (n++) * W)), ...);
        scan_tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          Index m = 0;
          ((h_reg = update(m++, h_reg)), ...);
        });
        n = 0;
        (simd::store<Arch>(h + (n++) * W, h_reg), ...);
      });
    } else {
      scan_tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        for (Index n = 0; n < N; ++n) simd::store<Arch>(h + n * W, update(n, simd::load<Arch>(h + n * W)));
      });
    }
  }

  // local_bidirectional: windows per reverse call, so that a call covers ~16 tokens (its slots stay
  // in L1 and the call's fixed cost, saving and restoring the forward state registers, is amortised).
  static Index window_groups(Index window) { return window >= 16 ? 1 : 16 / window; }

  // local_bidirectional: the reverse pass over the `count` slots of consecutive windows of M tokens
  // (the last one may be shorter), slot k = token first + k: a_t [N, W], dt·u, y, gate; r restarts
  // from 0 after each window's last token. Writes the outputs out[k·stride]. B_rows / C_rows:
  // B[b, first, g, :] (selective) with rows bc_row apart, or the time-invariant [N, W] B_ti / C_ti.
  // r_buf: [N, W] r when NC = 0.
  // Not inlined: the call boundary keeps the forward loop's registers (the NC state vectors) its
  // own; they are saved once per call, not once per token.
  template <int NC, bool VarB, bool VarC>
  [[gnu::noinline]] static void reverse_windows(const float* slots, Index state, Index window, Index count,
                                                const float* B_rows, const float* C_rows, Index bc_row,
                                                const float* B_ti, const float* C_ti, float* out, Index stride,
                                                Index width, float* pad, float* r_buf) noexcept {
    const Index N = NC > 0 ? NC : state, slot_stride = (N + 3) * W;
    auto tokens = [&](auto&& update_r) TOKENMIX_ALWAYS_INLINE_LAMBDA {
      for (Index k = count - 1; k >= 0; --k) {
        const float* slot = slots + k * slot_stride;
        const bool window_last = k == count - 1 || (k + 1) % window == 0;
        const V dt_x = simd::load<Arch>(slot + N * W);
        const V y = simd::load<Arch>(slot + (N + 1) * W), gate = simd::load<Arch>(slot + (N + 2) * W);
        const float* B_t = VarB ? B_rows + k * bc_row : nullptr;
        const float* C_t = VarC ? C_rows + k * bc_row : nullptr;
        if (window_last) {  // the window's last token: r_{t+1} = 0, so excl_t = 0 and r_t = b_t
          update_r([&](Index n, V) TOKENMIX_ALWAYS_INLINE_LAMBDA {
            return dt_x * (VarB ? V(B_t[n]) : simd::load<Arch>(B_ti + n * W));
          });
          simd::store_upto<Arch>(out + k * stride, y * gate, width, pad);
          continue;
        }
        V rev[4] = {V(0.0f), V(0.0f), V(0.0f), V(0.0f)};  // 4 partial sums: short FMA chains
        update_r([&](Index n, V r) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          const V excl = simd::load<Arch>(slot + n * W) * r;  // a_t·r_{t+1}
          const V Bn = VarB ? V(B_t[n]) : simd::load<Arch>(B_ti + n * W);
          const V Cn = VarC ? V(C_t[n]) : simd::load<Arch>(C_ti + n * W);
          rev[n & 3] = simd::fmadd<Arch>(excl, Cn, rev[n & 3]);
          return simd::fmadd<Arch>(dt_x, Bn, excl);  // r_t = a_t·r_{t+1} + b_t
        });
        simd::store_upto<Arch>(out + k * stride, (y + ((rev[0] + rev[1]) + (rev[2] + rev[3]))) * gate, width, pad);
      }
    };
    if constexpr (NC > 0) {
      with_registers(std::make_integer_sequence<int, NC>{}, [&](auto... r_reg) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
          Index m = 0;
          ((r_reg = update(m++, r_reg)), ...);
        });
      });
    } else {
      std::fill(r_buf, r_buf + N * W, 0.0f);
      tokens([&](auto&& update) TOKENMIX_ALWAYS_INLINE_LAMBDA {
        for (Index n = 0; n < N; ++n) simd::store<Arch>(r_buf + n * W, update(n, simd::load<Arch>(r_buf + n * W)));
      });
    }
  }
};

}  // namespace tokenmix::ssm::detail
