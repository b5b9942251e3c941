#pragma once
// One randomised selective-scan test case (extents, options, local window M, seed), its inputs in
// Mamba's ranges and the case builders the scan-family tests share (tests/ssm/selective_scan_test.cpp,
// selective_scan_states_test.cpp, local_bidirectional_scan_test.cpp, selective_state_update_test.cpp).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "support/random.hpp"
#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::testing {

enum class Form { grouped, single, time_invariant };  // B/C as [B, L, G, N], [B, L, N] or [D, N]

// One test case: extents, options, window (local-bidirectional tests only) and seed.
struct ScanCase {
  Index batch = 1, length = 1, channels = 1, state = 1, groups = 1, window = 1;
  Form B_form = Form::grouped, C_form = Form::grouped;
  bool skip = false, gate = false, bias = false, softplus = false, initial = false;
  std::uint64_t seed = 0;

  // The five options from the bits of `mask` (1 D, 2 z, 4 delta_bias, 8 softplus, 16 initial_state),
  // as the sweeps over option combinations enumerate them.
  void set_options(int mask) {
    skip = mask & 1, gate = mask & 2, bias = mask & 4, softplus = mask & 8, initial = mask & 16;
  }

  std::string describe() const {
    std::ostringstream os;
    auto form = [](Form f) { return f == Form::grouped ? "grouped" : f == Form::single ? "single" : "time_invariant"; };
    os << "B=" << batch << " L=" << length << " D=" << channels << " N=" << state << " G=" << groups
       << " M=" << window << " B_form=" << form(B_form) << " C_form=" << form(C_form) << " D_skip=" << skip
       << " z=" << gate << " delta_bias=" << bias << " softplus=" << softplus << " initial_state=" << initial
       << " seed=" << seed;
    return os.str();
  }
};

// Tokens [from, to) of a [B, L, ...] tensor (rank 3 or 4) as an owning tensor; flipped: in reverse
// token order.
template <int R>
Tensor<float, R> slice_tokens(const Tensor<float, R>& t, Index from, Index to, bool flipped = false) {
  static_assert(R == 3 || R == 4, "slice_tokens: [B, L, D] or [B, L, G, N]");
  auto dims = t.dimensions();
  dims[1] = to - from;
  Tensor<float, R> s(dims);
  Index inner = 1;  // floats per token
  for (int r = 2; r < R; ++r) inner *= t.dimension(r);
  for (Index b = 0; b < t.dimension(0); ++b)
    for (Index i = 0; i < to - from; ++i) {
      const Index source = flipped ? to - 1 - i : from + i;
      std::copy_n(t.data() + (b * t.dimension(1) + source) * inner, inner, s.data() + (b * (to - from) + i) * inner);
    }
  return s;
}

struct ScanInputs {
  Tensor<float, 3> u, delta, z, h0;  // [B, L, D] x3, [B, D, N]
  Tensor<float, 2> A;                // [D, N]
  Tensor<float, 4> B4, C4;           // [B, L, G, N]
  Tensor<float, 3> B3, C3;           // [B, L, N]
  Tensor<float, 2> B2, C2;           // [D, N]
  Tensor<float, 1> D, bias;          // [D]
  ScanCase c;

  // Draws every operand form from c.seed. draw_single_form = false skips the [B, L, N] forms B3/C3
  // (empty then), as the decode tests (which have no such form) always drew their data.
  explicit ScanInputs(const ScanCase& sc, bool draw_single_form = true) : c(sc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, Dm = c.channels, N = c.state, G = c.groups;
    u = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    // Without softplus delta is used as dt directly and must be positive; with it, it is a raw
    // projection around zero (plus a bias making softplus(.) ~ 0.001..0.1 as at Mamba's init).
    delta = c.softplus ? testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng)
                       : testing::random_uniform<3>({Bt, L, Dm}, 0.001f, 0.2f, rng);
    A = Tensor<float, 2>(Dm, N);
    std::uniform_real_distribution<float> jitter(-0.2f, 0.2f);
    for (Index d = 0; d < Dm; ++d)
      for (Index n = 0; n < N; ++n) A(d, n) = -std::exp(std::log(float(n + 1)) + jitter(rng));  // S4D-real init
    B4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    C4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    if (draw_single_form) {
      B3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
      C3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
    }
    B2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    C2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    D = testing::random_uniform<1>({Dm}, 0.5f, 1.5f, rng);
    // With softplus: softplus(bias) in [0.001, 0.1] as Mamba's dt init; without: a small positive shift.
    bias = c.softplus ? testing::random_uniform<1>({Dm}, -6.9f, -2.2f, rng) : testing::random_uniform<1>({Dm}, 0.f, 0.05f, rng);
    z = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    h0 = testing::random_normal<3>({Bt, Dm, N}, 0.f, 1.f, rng);
  }
  ssm::ScanOperand operand(Form f, const Tensor<float, 4>& t4, const Tensor<float, 3>& t3,
                           const Tensor<float, 2>& t2) const {
    return f == Form::grouped ? ssm::ScanOperand(t4) : f == Form::single ? ssm::ScanOperand(t3) : ssm::ScanOperand(t2);
  }
  ssm::ScanOperand B() const { return operand(c.B_form, B4, B3, B2); }
  ssm::ScanOperand C() const { return operand(c.C_form, C4, C3, C2); }
  ssm::SelectiveScanOptions options(const Eigen::ThreadPoolDevice* device = nullptr) const {
    ssm::SelectiveScanOptions o;
    if (c.skip) o.D = D;
    if (c.gate) o.z = z;
    if (c.bias) o.delta_bias = bias;
    o.delta_softplus = c.softplus;
    if (c.initial) o.initial_state = h0;
    o.device = device;
    return o;
  }

  // Tokens [from, to) of every per-token input (u, delta, z, B/C), the rest as is: the first or
  // second half of a split sequence.
  ScanInputs tokens(Index from, Index to) const {
    ScanInputs part = *this;
    part.c.length = to - from;
    part.u = slice_tokens(u, from, to), part.delta = slice_tokens(delta, from, to), part.z = slice_tokens(z, from, to);
    part.B4 = slice_tokens(B4, from, to), part.C4 = slice_tokens(C4, from, to);
    if (B3.size() > 0) part.B3 = slice_tokens(B3, from, to), part.C3 = slice_tokens(C3, from, to);
    return part;
  }

  // Changes every token from `from` on: u, delta, z and B/C of group 0 (the causality tests).
  void perturb_from(Index from) {
    for (Index b = 0; b < c.batch; ++b)
      for (Index s = from; s < c.length; ++s) {
        for (Index d = 0; d < c.channels; ++d) u(b, s, d) += 1.f, delta(b, s, d) -= 0.5f, z(b, s, d) *= -1.f;
        for (Index n = 0; n < c.state; ++n) B4(b, s, 0, n) += 2.f, C4(b, s, 0, n) -= 1.f;
      }
  }
};

// u, delta and z copied one float past the start of their storage, and an output of u's shape
// likewise, so that no data pointer is vector-aligned (the AcceptsMisalignedViews tests). `options`
// is the case's with the misaligned z. The views point into the storage: not copyable.
struct MisalignedInputs {
  std::vector<float> u_storage, delta_storage, z_storage, out_storage;
  ConstTensorView<float, 3> u, delta;  // [B, L, D]
  TensorView<float, 3> out;            // [B, L, D]
  ssm::SelectiveScanOptions options;

  explicit MisalignedInputs(const ScanInputs& in)
      : out_storage(static_cast<std::size_t>(in.u.size() + 1)),
        u(shifted(in.u, u_storage)),
        delta(shifted(in.delta, delta_storage)),
        out(out_storage.data() + 1, in.u.dimensions()),
        options(in.options()) {
    options.z.emplace(shifted(in.z, z_storage));
  }
  MisalignedInputs(const MisalignedInputs&) = delete;
  MisalignedInputs& operator=(const MisalignedInputs&) = delete;

 private:
  static ConstTensorView<float, 3> shifted(const Tensor<float, 3>& t, std::vector<float>& storage) {
    storage.assign(static_cast<std::size_t>(t.size() + 1), 0.f);
    std::copy(t.data(), t.data() + t.size(), storage.data() + 1);
    return ConstTensorView<float, 3>(storage.data() + 1, t.dimensions());
  }
};

// Channel counts around the vector width W = lanes (simd::lanes<Arch>): 1, W - 1, W, W + 1, 3W + 2
// (0 left out).
inline std::vector<Index> channels_around(std::size_t lanes) {
  const Index W = static_cast<Index>(lanes);
  std::vector<Index> counts;
  for (Index channels : {Index(1), W - 1, W, W + 1, 3 * W + 2})
    if (channels > 0) counts.push_back(channels);
  return counts;
}

// The case of the single-arch property tests: Mamba's N = 16 and one group, an odd D = 37, with D,
// z, delta_bias and softplus on.
inline ScanCase mamba_case(Index length, std::uint64_t seed, Index window = 1) {
  ScanCase c;
  c.batch = 2, c.length = length, c.channels = 37, c.state = 16, c.groups = 1, c.window = window;
  c.skip = c.gate = c.bias = c.softplus = true, c.seed = seed;
  return c;
}

// Every pair of B/C forms for each N of `states`: D = 21 in 3 groups where a form is grouped and
// none single (else 1), D, z and initial_state on; seeds from `seed` on.
inline std::vector<ScanCase> operand_form_cases(Index length, std::initializer_list<Index> states, std::uint64_t seed) {
  std::vector<ScanCase> cases;
  for (Form bf : {Form::grouped, Form::single, Form::time_invariant})
    for (Form cf : {Form::grouped, Form::single, Form::time_invariant})
      for (Index state : states) {
        ScanCase c;
        c.batch = 2, c.length = length, c.channels = 21, c.state = state;
        c.groups = (bf == Form::grouped || cf == Form::grouped) && !(bf == Form::single || cf == Form::single) ? 3 : 1;
        c.B_form = bf, c.C_form = cf;
        c.skip = c.gate = c.initial = true;
        c.seed = seed++;
        cases.push_back(c);
      }
  return cases;
}

// A seeded random case (shapes, forms, options) with L in [0, max_length]. draw_window draws the
// window M too (used by the LB tests); either way a sweep keeps the cases it always drew.
inline ScanCase random_case(Rng& rng, std::uint64_t seed, Index max_length = 150, bool draw_window = true) {
  ScanCase c;
  c.batch = testing::random_index(1, 3, rng);
  c.length = testing::random_index(0, max_length, rng);
  c.groups = testing::random_index(1, 4, rng);
  c.channels = c.groups * testing::random_index(1, 24, rng);
  c.state = testing::random_index(1, 40, rng);
  if (draw_window) c.window = testing::random_index(1, std::max<Index>(2, c.length + 5), rng);
  c.B_form = static_cast<Form>(testing::random_index(0, 2, rng));
  c.C_form = static_cast<Form>(testing::random_index(0, 2, rng));
  if (c.B_form == Form::single || c.C_form == Form::single) c.groups = 1;
  c.skip = testing::random_index(0, 1, rng), c.gate = testing::random_index(0, 1, rng);
  c.softplus = testing::random_index(0, 1, rng), c.bias = testing::random_index(0, 1, rng);
  c.initial = testing::random_index(0, 1, rng);
  c.seed = seed;
  return c;
}

}  // namespace tokenmix::testing
