#pragma once
// One randomised selective-scan test case (extents, options, local window M, seed) and its inputs in
// Mamba's ranges, shared by the tests of the scan's kernel modes (tests/ssm/selective_scan_states_test.cpp,
// tests/ssm/local_bidirectional_scan_test.cpp).

#include <cstdint>
#include <sstream>
#include <string>

#include "support/random.hpp"
#include "tokenmix/ssm/selective_scan_types.hpp"

namespace tokenmix::testing {

enum class Form { grouped, single, time_invariant };  // B/C as [B, L, G, N], [B, L, N] or [D, N]

// One test case: extents, options, window and seed. Inputs are drawn in Mamba's ranges (as in
// tests/ssm/selective_scan_test.cpp).
struct ScanCase {
  Index batch = 1, length = 1, channels = 1, state = 1, groups = 1, window = 1;
  Form B_form = Form::grouped, C_form = Form::grouped;
  bool skip = false, gate = false, bias = false, softplus = false, initial = false;
  std::uint64_t seed = 0;

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

struct ScanInputs {
  Tensor<float, 3> u, delta, z, h0;  // [B, L, D] x3, [B, D, N]
  Tensor<float, 2> A;                // [D, N]
  Tensor<float, 4> B4, C4;           // [B, L, G, N]
  Tensor<float, 3> B3, C3;           // [B, L, N]
  Tensor<float, 2> B2, C2;           // [D, N]
  Tensor<float, 1> D, bias;          // [D]
  ScanCase c;

  explicit ScanInputs(const ScanCase& sc) : c(sc) {
    Rng rng(c.seed);
    const Index Bt = c.batch, L = c.length, Dm = c.channels, N = c.state, G = c.groups;
    u = testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng);
    delta = c.softplus ? testing::random_normal<3>({Bt, L, Dm}, 0.f, 1.f, rng)
                       : testing::random_uniform<3>({Bt, L, Dm}, 0.001f, 0.2f, rng);
    A = Tensor<float, 2>(Dm, N);
    std::uniform_real_distribution<float> jitter(-0.2f, 0.2f);
    for (Index d = 0; d < Dm; ++d)
      for (Index n = 0; n < N; ++n) A(d, n) = -std::exp(std::log(float(n + 1)) + jitter(rng));  // S4D-real init
    B4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    C4 = testing::random_normal<4>({Bt, L, G, N}, 0.f, 1.f, rng);
    B3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
    C3 = testing::random_normal<3>({Bt, L, N}, 0.f, 1.f, rng);
    B2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    C2 = testing::random_normal<2>({Dm, N}, 0.f, 1.f, rng);
    D = testing::random_uniform<1>({Dm}, 0.5f, 1.5f, rng);
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
};

// A seeded random case (shapes, forms, options; window only for the LB tests).
inline ScanCase random_case(Rng& rng, std::uint64_t seed) {
  ScanCase c;
  c.batch = testing::random_index(1, 3, rng);
  c.length = testing::random_index(0, 150, rng);
  c.groups = testing::random_index(1, 4, rng);
  c.channels = c.groups * testing::random_index(1, 24, rng);
  c.state = testing::random_index(1, 40, rng);
  c.window = testing::random_index(1, std::max<Index>(2, c.length + 5), rng);
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
