#pragma once
// Neighborhood attention (NATTEN >= 0.20 semantics; spec lightning_natten.md part B, a2mamba.md §1a):
// the window rule per axis and the argument validation shared by the operators and their oracle
// (reference/neighborhood_attention.hpp).
//
// Along one axis of length L, with kernel size K, dilation d, stride s and is_causal:
//  - dilation groups: token i is in group g = i mod d at in-group coordinate i' = i div d; the group
//    has L_g = ceil((L - g) / d) tokens (the first L mod d groups are one longer), and a query sees
//    only keys of its own group;
//  - non-causal: left = floor(K/2), right = floor(K/2) + (K mod 2) - 1 (even K: one fewer on the
//    right); the stride-group leader is min(floor(i'/s)·s + floor(s/2), L_g - 1); the centre
//    c = clamp(leader, left, L_g - 1 - right); keys are the in-group coordinates [c - left, c + right]:
//    ALWAYS exactly K keys, the window shifting inward at the borders (never padded);
//  - causal: leader = min(floor(i'/s)·s + s - 1, L_g - 1); keys [max(leader - K + 1, 0), i'] (no
//    shift: early queries see fewer keys);
//  - global key index = in-group coordinate · d + g.
// In 2-D / 3-D the neighbourhood is the product of the per-axis windows; K, d, s, causal per axis.
// Relative positional bias (NATTEN <= 0.17, non-causal): per axis the index (K - 1) + (j' - i') in
// group coordinates, so border queries use off-centre entries; rpb is [H, 2K0 - 1, (2K1 - 1, ...)].
// Validity: 1 <= K, K·d <= L, 1 <= s <= K (NATTEN requires K >= 2; K = 1, attention to oneself, is
// allowed here as the issue asks).

#include <array>
#include <optional>

#include "tokenmix/config.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::attention {

// The keys of one query along one axis: global indices first, first + step, ..., count of them;
// rpb_first = the rpb index of the first key ((K - 1) + (j' - i') of it).
struct AxisWindow {
  Index first = 0, count = 0, step = 1, rpb_first = 0;
};

inline AxisWindow neighborhood_axis_window(Index i, Index L, Index K, Index d, Index s, bool causal) {
  const Index g = i % d, ii = i / d, Lg = (L - g + d - 1) / d;
  Index lo = 0, hi = 0;
  if (causal) {
    const Index leader = std::min((ii / s) * s + s - 1, Lg - 1);
    lo = std::max<Index>(leader - K + 1, 0), hi = ii;
  } else {
    const Index left = K / 2, right = K / 2 + K % 2 - 1;
    const Index leader = std::min((ii / s) * s + s / 2, Lg - 1);
    const Index c = std::min(std::max(leader, left), Lg - 1 - right);
    lo = c - left, hi = c + right;
  }
  return AxisWindow{lo * d + g, hi - lo + 1, d, (K - 1) + (lo - ii)};
}

// Per-axis parameters of an R-dimensional neighbourhood (NATTEN's int-or-tuple arguments).
template <int R>
struct NeighborhoodParams {
  std::array<Index, R> kernel_size{};
  std::array<Index, R> dilation = filled(1);
  std::array<Index, R> stride = filled(1);
  std::array<bool, R> causal{};
  std::optional<float> scale;  // default 1/sqrt(P)

  static std::array<Index, R> filled(Index v) {
    std::array<Index, R> a{};
    a.fill(v);
    return a;
  }
  // The same kernel size (and dilation) on every axis.
  static NeighborhoodParams uniform(Index kernel_size, Index dilation = 1) {
    NeighborhoodParams p;
    p.kernel_size = filled(kernel_size), p.dilation = filled(dilation);
    return p;
  }
};

namespace detail {

// Validates the parameters against the spatial extents (NATTEN's messages: K >= 1, stride <= K,
// K·d <= L), naming the op and the axis.
template <int R>
void check_neighborhood_params(const char* op, const NeighborhoodParams<R>& p, const std::array<Index, std::size_t(R)>& extent) {
  for (int a = 0; a < R; ++a) {
    const Index K = p.kernel_size[std::size_t(a)], d = p.dilation[std::size_t(a)], s = p.stride[std::size_t(a)];
    const Index L = extent[std::size_t(a)];
    TOKENMIX_CHECK(K >= 1, op, ": kernel_size on axis ", a, " is ", K, ", expected >= 1");
    TOKENMIX_CHECK(d >= 1, op, ": dilation on axis ", a, " is ", d, ", expected >= 1");
    TOKENMIX_CHECK(s >= 1 && s <= K, op, ": stride on axis ", a, " is ", s, ", expected 1 <= stride <= kernel_size (",
                   K, ")");
    TOKENMIX_CHECK(K * d <= L, op, ": kernel_size·dilation on axis ", a, " is ", K, "·", d, " = ", K * d,
                   ", larger than the axis (", L, ")");
  }
}

// q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv]: the same batch and spatial extents,
// H a multiple of Hkv, P and Pv >= 1. Returns the spatial extents.
template <int R, class Q, class K, class Vt>
std::array<Index, std::size_t(R)> check_neighborhood_qkv(const char* op, const Q& q, const K& k, const Vt& v) {
  for (int a = 0; a <= R; ++a)
    TOKENMIX_CHECK(k.dimension(a) == q.dimension(a) && v.dimension(a) == q.dimension(a), op, ": k has shape ",
                   shape_of(k), " and v ", shape_of(v), ", expected the batch and spatial extents of q ", shape_of(q));
  const Index H = q.dimension(R + 1), P = q.dimension(R + 2), Hkv = k.dimension(R + 1);
  TOKENMIX_CHECK(H >= 1 && P >= 1 && Hkv >= 1 && H % Hkv == 0 && k.dimension(R + 2) == P && v.dimension(R + 1) == Hkv &&
                     v.dimension(R + 2) >= 1,
                 op, ": q has shape ", shape_of(q), ", k ", shape_of(k), ", v ", shape_of(v),
                 ": expected k [..., Hkv, P] and v [..., Hkv, Pv] with H a multiple of Hkv");
  std::array<Index, std::size_t(R)> extent{};
  for (int a = 0; a < R; ++a) extent[std::size_t(a)] = q.dimension(a + 1);
  return extent;
}

// rpb [H, 2K_0 - 1, ...]: one table per head, not with causal axes (as NATTEN).
template <int R, class Rpb>
void check_neighborhood_rpb(const char* op, const Rpb& rpb, const NeighborhoodParams<R>& p, Index heads) {
  bool ok = rpb.dimension(0) == heads;
  for (int a = 0; a < R; ++a) ok = ok && rpb.dimension(a + 1) == 2 * p.kernel_size[std::size_t(a)] - 1;
  TOKENMIX_CHECK(ok, op, ": rpb has shape ", shape_of(rpb), ", expected [H=", heads, ", 2K-1 per axis]");
  for (int a = 0; a < R; ++a)
    TOKENMIX_CHECK(!p.causal[std::size_t(a)], op, ": rpb is not defined with causal axes (as NATTEN)");
}

// The spatial geometry of one call (extents, token strides, window slots) and the walk over a
// query's neighbourhood, shared by the operators and the oracle.
template <int R>
struct NeighborhoodGrid {
  std::array<Index, R> extent{}, stride{};
  Index tokens = 1, slots = 1;

  template <class T>
  NeighborhoodGrid(const T& q, const NeighborhoodParams<R>& p) {
    for (int a = 0; a < R; ++a) extent[std::size_t(a)] = q.dimension(a + 1), tokens *= extent[std::size_t(a)];
    stride[std::size_t(R - 1)] = 1;
    for (int a = R - 2; a >= 0; --a) stride[std::size_t(a)] = stride[std::size_t(a + 1)] * extent[std::size_t(a + 1)];
    for (int a = 0; a < R; ++a) slots *= p.kernel_size[std::size_t(a)];
  }

  // Calls f(slot, key_token, rpb_offset, count, key_step) for every run of valid slots of query token
  // t along the last axis, in slot order: the run's slots are slot + i, its keys key_token + i·key_step
  // and its rpb offsets rpb_offset + i, for i < count. rpb offsets index one head's flat
  // [2K_0 - 1, ..] table.
  template <class F>
  void for_each_line(Index t, const NeighborhoodParams<R>& p, F&& f) const {
    std::array<AxisWindow, R> win;
    for (int a = 0; a < R; ++a)
      win[std::size_t(a)] = neighborhood_axis_window((t / stride[std::size_t(a)]) % extent[std::size_t(a)],
                                                     extent[std::size_t(a)], p.kernel_size[std::size_t(a)],
                                                     p.dilation[std::size_t(a)], p.stride[std::size_t(a)],
                                                     p.causal[std::size_t(a)]);
    const AxisWindow& inner = win[std::size_t(R - 1)];
    std::array<Index, R> n{};  // the position along each outer axis (n[R - 1] stays 0)
    for (bool more = true; more;) {
      Index slot = 0, key = 0, rpb = 0;
      for (int a = 0; a < R; ++a) {
        const Index K = p.kernel_size[std::size_t(a)];
        slot = slot * K + n[std::size_t(a)];
        rpb = rpb * (2 * K - 1) + win[std::size_t(a)].rpb_first + n[std::size_t(a)];
        key += (win[std::size_t(a)].first + n[std::size_t(a)] * win[std::size_t(a)].step) * stride[std::size_t(a)];
      }
      f(slot, key, rpb, inner.count, inner.step * stride[std::size_t(R - 1)]);
      more = false;
      for (int a = R - 2; a >= 0; --a) {
        if (++n[std::size_t(a)] < win[std::size_t(a)].count) {
          more = true;
          break;
        }
        n[std::size_t(a)] = 0;
      }
    }
  }

  // Calls f(slot, key_token, rpb_offset) for every valid slot of query token t, in slot order.
  template <class F>
  void for_each_slot(Index t, const NeighborhoodParams<R>& p, F&& f) const {
    for_each_line(t, p, [&](Index slot, Index key, Index rpb, Index count, Index key_step) {
      for (Index i = 0; i < count; ++i) f(slot + i, key + i * key_step, rpb + i);
    });
  }
};

}  // namespace detail
}  // namespace tokenmix::attention
