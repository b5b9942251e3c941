// hybrid::H3Layer against its oracle (ref::h3: direct convolutions in double) on odd shapes and
// head_dim 1..3, the oracle and the layer against the PyTorch fixtures (tests/data/h3, made by
// tests/data/make_h3_fixture.py from H3's FFT and recurrent paths), the properties of a causal
// block (step == parallel, state carried across calls, thread-count invariance, causality) and
// every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/fixture.hpp"
#include "support/random.hpp"
#include "support/sequence.hpp"
#include "tokenmix/hybrid/h3.hpp"
#include "tokenmix/reference/h3.hpp"

namespace tokenmix {
namespace h3_test {

using testing::Rng;
using testing::slice_tokens;
using testing::token;
using testing::tolerance::h3;

// Weights shaped and scaled like the released module's init (nn.Linear uniform ±1/√D, shift B = e_1
// perturbed, diag-lin A = -0.5 + iπm perturbed, log dt ~ U[log 0.01, log 0.5] so that short
// sequences see the kernel decay), from one seed.
hybrid::H3Weights random_weights(const hybrid::H3Config& c, std::uint64_t seed) {
  Rng rng(seed);
  const Index D = c.d_model, N = c.d_state, Hh = c.heads(), M = c.modes();
  const float bound = 1.0f / std::sqrt(static_cast<float>(D));
  hybrid::H3Weights w;
  w.q_proj_weight = testing::random_uniform<2>({D, D}, -bound, bound, rng);
  w.k_proj_weight = testing::random_uniform<2>({D, D}, -bound, bound, rng);
  w.v_proj_weight = testing::random_uniform<2>({D, D}, -bound, bound, rng);
  w.output_linear_weight = testing::random_uniform<2>({D, D}, -bound, bound, rng);
  w.q_proj_bias = testing::random_uniform<1>({D}, -bound, bound, rng);
  w.k_proj_bias = testing::random_uniform<1>({D}, -bound, bound, rng);
  w.v_proj_bias = testing::random_uniform<1>({D}, -bound, bound, rng);
  w.output_linear_bias = testing::random_uniform<1>({D}, -bound, bound, rng);
  w.ssm_k_kernel_B = testing::random_normal<2>({D, N}, 0.f, 0.1f, rng);
  for (Index d = 0; d < D; ++d) w.ssm_k_kernel_B(d, 0) += 1.0f;
  const float cb = 1.0f / std::sqrt(static_cast<float>(N));
  w.ssm_k_kernel_C = testing::random_uniform<2>({D, N}, -cb, cb, rng);
  w.ssm_k_D = testing::random_normal<1>({D}, 0.f, 1.f, rng);
  w.kernel_log_dt = testing::random_uniform<1>({Hh}, std::log(0.01f), std::log(0.5f), rng);
  w.kernel_inv_A_real = testing::random_normal<2>({Hh, M}, std::log(0.5f), 0.2f, rng);
  w.kernel_A_imag = testing::random_normal<2>({Hh, M}, 0.f, 0.1f, rng);
  for (Index h = 0; h < Hh; ++h)
    for (Index m = 0; m < M; ++m) w.kernel_A_imag(h, m) += 3.14159265f * static_cast<float>(m);
  w.kernel_B = testing::random_normal<3>({Hh, M, 2}, 0.f, 0.1f, rng);
  for (Index h = 0; h < Hh; ++h)
    for (Index m = 0; m < M; ++m) w.kernel_B(h, m, 0) += 1.0f;
  w.kernel_C = testing::random_normal<3>({Hh, M, 2}, 0.f, 0.5f, rng);
  w.D = testing::random_normal<1>({Hh}, 0.f, 1.f, rng);
  return w;
}

struct H3Case {
  Index batch, length, d_model, d_state, head_dim;
  std::uint64_t seed;
  hybrid::H3Config config() const { return {d_model, d_state, head_dim}; }
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " L=" << length << " D=" << d_model << " N=" << d_state << " hd=" << head_dim
       << " seed=" << seed;
    return os.str();
  }
};

Tensor<float, 3> random_input(const H3Case& c) {
  Rng rng(c.seed + 1000);
  return testing::random_normal<3>({c.batch, c.length, c.d_model}, 0.f, 1.f, rng);
}

// D around the vector width, head_dim 1..3 (the diagonal SSM's channels Hh·hd² and the (j, h)
// output order), N below and above L, L across the diagonal SSM's 64-token chunk.
TEST(H3Test, MatchesOracleOnOddShapes) {
  for (const H3Case& c : {H3Case{2, 13, 8, 8, 1, 1}, H3Case{1, 9, 12, 6, 2, 2}, H3Case{2, 70, 18, 4, 3, 3},
                          H3Case{1, 20, 17, 10, 1, 4}, H3Case{3, 5, 33, 64, 1, 5}, H3Case{1, 1, 4, 2, 2, 6}}) {
    const hybrid::H3Weights w = random_weights(c.config(), c.seed);
    const Tensor<float, 3> u = random_input(c);
    hybrid::H3Layer layer(c.config(), w);
    const Tensor<float, 3> y = layer.forward(u);
    EXPECT_TRUE(testing::all_close(y, ref::h3<double>(c.config(), w, u), h3, c.describe()));
    EXPECT_TRUE(testing::bitwise_equal(hybrid::h3(c.config(), w, u), y, c.describe() + " hybrid::h3"));
  }
}

// Token-by-token steps reproduce the parallel form (same ops; the projections of one row are the
// same arithmetic whatever the number of rows) and leave the state a prefill leaves.
TEST(H3Test, StepsMatchParallelForm) {
  for (const H3Case& c : {H3Case{2, 9, 8, 8, 1, 11}, H3Case{1, 7, 12, 6, 2, 12}}) {
    const hybrid::H3Weights w = random_weights(c.config(), c.seed);
    const Tensor<float, 3> u = random_input(c);
    hybrid::H3Layer layer(c.config(), w);
    hybrid::H3State prefill_state = hybrid::make_h3_state(c.config(), c.batch);
    const Tensor<float, 3> parallel = layer.forward(u, &prefill_state);
    hybrid::H3State state = hybrid::make_h3_state(c.config(), c.batch);
    Tensor<float, 2> yt(c.batch, c.d_model);
    for (Index t = 0; t < c.length; ++t) {
      layer.step(token(u, t), state, TensorView<float, 2>(yt.data(), yt.dimensions()));
      for (Index b = 0; b < c.batch; ++b)
        for (Index d = 0; d < c.d_model; ++d)
          ASSERT_NEAR(yt(b, d), parallel(b, t, d), 1e-5 + 1e-5 * std::fabs(parallel(b, t, d)))
              << c.describe() << " step " << t << " [" << b << ", " << d << "]";
    }
    EXPECT_TRUE(testing::all_close(state.shift_state, prefill_state.shift_state, h3, c.describe() + " shift state"));
    EXPECT_TRUE(testing::all_close(state.diagonal_state, prefill_state.diagonal_state, h3, c.describe() + " diagonal state"));
  }
}

// forward(u1 ‖ u2) == forward(u2) continuing from the state forward(u1) leaves.
TEST(H3Test, StateCarriesAcrossCalls) {
  const H3Case c{2, 90, 12, 8, 2, 21};
  const hybrid::H3Weights w = random_weights(c.config(), c.seed);
  const Tensor<float, 3> u = random_input(c);
  hybrid::H3Layer layer(c.config(), w);
  const Tensor<float, 3> whole = layer.forward(u);
  for (Index split : {Index(0), Index(5), Index(64), Index(89)}) {
    hybrid::H3State state = hybrid::make_h3_state(c.config(), c.batch);
    const Tensor<float, 3> first = layer.forward(slice_tokens(u, 0, split), &state);
    const Tensor<float, 3> second = layer.forward(slice_tokens(u, split, c.length), &state);
    const std::string where = "split at " + std::to_string(split);
    EXPECT_TRUE(testing::all_close(first, slice_tokens(whole, 0, split), h3, where + " first part"));
    EXPECT_TRUE(testing::all_close(second, slice_tokens(whole, split, c.length), h3, where + " second part"));
  }
}

// Changing tokens after t leaves the outputs up to t unchanged.
TEST(H3Test, IsCausal) {
  const H3Case c{1, 30, 8, 8, 1, 31};
  const hybrid::H3Weights w = random_weights(c.config(), c.seed);
  Tensor<float, 3> u = random_input(c);
  hybrid::H3Layer layer(c.config(), w);
  const Tensor<float, 3> before = layer.forward(u);
  for (Index t = 20; t < 30; ++t)
    for (Index d = 0; d < 8; ++d) u(0, t, d) += 3.0f;
  const Tensor<float, 3> after = layer.forward(u);
  EXPECT_TRUE(testing::bitwise_equal(slice_tokens(after, 0, 20), slice_tokens(before, 0, 20), "outputs before t = 20"));
}

TEST(H3Test, ThreadCountDoesNotChangeResults) {
  const H3Case c{2, 40, 24, 8, 2, 41};
  const hybrid::H3Weights w = random_weights(c.config(), c.seed);
  const Tensor<float, 3> u = random_input(c);
  const Tensor<float, 3> single = hybrid::H3Layer(c.config(), w).forward(u);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    hybrid::H3Layer layer(c.config(), w, pool.device());
    EXPECT_TRUE(testing::bitwise_equal(layer.forward(u), single, std::to_string(threads) + " threads"));
  }
}

// ---- fixtures from the PyTorch transcription of the released code -----------------------------------

hybrid::H3Weights load_weights(const std::string& name) {
  auto m = [&](const char* f) { return testing::load_fixture<2>("h3", name, f); };
  auto v = [&](const char* f) { return testing::load_fixture<1>("h3", name, f); };
  auto c = [&](const char* f) { return testing::load_fixture<3>("h3", name, f); };
  hybrid::H3Weights w;
  w.q_proj_weight = m("q_proj_weight"), w.k_proj_weight = m("k_proj_weight"), w.v_proj_weight = m("v_proj_weight");
  w.q_proj_bias = v("q_proj_bias"), w.k_proj_bias = v("k_proj_bias"), w.v_proj_bias = v("v_proj_bias");
  w.ssm_k_kernel_B = m("ssm_k_kernel_B"), w.ssm_k_kernel_C = m("ssm_k_kernel_C"), w.ssm_k_D = v("ssm_k_D");
  w.kernel_log_dt = v("kernel_log_dt"), w.kernel_inv_A_real = m("kernel_inv_A_real"), w.kernel_A_imag = m("kernel_A_imag");
  w.kernel_B = c("kernel_B"), w.kernel_C = c("kernel_C"), w.D = v("D");
  w.output_linear_weight = m("output_linear_weight"), w.output_linear_bias = v("output_linear_bias");
  return w;
}

TEST(H3FixtureTest, OracleAndLayerMatchTheReleasedCode) {
  for (const auto& [name, head_dim] : {std::pair<std::string, Index>{"hd1", 1}, {"hd2", 2}}) {
    const Tensor<float, 3> u = testing::load_fixture<3>("h3", name, "u");
    const Tensor<float, 3> expected = testing::load_fixture<3>("h3", name, "out");
    const hybrid::H3Weights w = load_weights(name);
    const hybrid::H3Config config{u.dimension(2), w.ssm_k_kernel_B.dimension(1), head_dim};
    EXPECT_TRUE(testing::check_fixture(ref::h3<double>(config, w, u), expected, testing::tolerance::oracle_vs_fixture,
                                       "h3/" + name + " oracle"));
    hybrid::H3Layer layer(config, w);
    EXPECT_TRUE(testing::check_fixture(layer.forward(u), expected, h3, "h3/" + name + " layer"));
  }
}

// ---- bad input -------------------------------------------------------------------------------

TEST(H3Test, RejectsBadInputWithClearErrors) {
  const hybrid::H3Config c{8, 6, 2};
  const hybrid::H3Weights w = random_weights(c, 51);
  const std::string op = "H3Layer";
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(hybrid::H3Config{8, 6, 3}, w); }, op, "d_model=8 and head_dim=3 must be positive with head_dim dividing d_model"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(hybrid::H3Config{8, 5, 2}, w); }, op, "d_state=5 must be even and >= 2"));
  auto with = [&](auto setter) { hybrid::H3Weights copy = w; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(c, with([](auto& x) { x.q_proj_weight = Tensor<float, 2>(8, 7); })); }, op, "q_proj_weight has shape [8, 7], expected [D=8, D=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(c, with([](auto& x) { x.ssm_k_kernel_C = Tensor<float, 2>(8, 5); })); }, op, "ssm_k_kernel_C has shape [8, 5], expected [D=8, N=6]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(c, with([](auto& x) { x.kernel_B = Tensor<float, 3>(4, 3, 1); })); }, op, "kernel_B has shape [4, 3, 1], expected [Hh=4, M=3, 2=2]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(c, with([](auto& x) { x.D = Tensor<float, 1>(8); })); }, op, "D has shape [8], expected [Hh=4]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::H3Layer(c, with([](auto& x) { x.kernel_log_dt(1) = NAN; })); }, op, "kernel_log_dt[1] = nan must be finite"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::h3<double>(c, with([](auto& x) { x.output_linear_bias = Tensor<float, 1>(7); }), Tensor<float, 3>(1, 2, 8)); }, "ref::h3", "output_linear_bias has shape [7]"));

  hybrid::H3Layer layer(c, w);
  const std::string fwd = "H3Layer::forward";
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(Tensor<float, 3>(2, 5, 7)); }, fwd, "u has shape [2, 5, 7], expected [B, L, D=8] with B > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(Tensor<float, 3>(0, 5, 8)); }, fwd, "u has shape [0, 5, 8]"));
  Tensor<float, 3> u(2, 5, 8), out(2, 4, 8);
  u.setConstant(0.5f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(u, TensorView<float, 3>(out.data(), out.dimensions())); }, fwd, "out has shape [2, 4, 8], expected [B=2, L=5, D=8] like u"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(u, TensorView<float, 3>(u.data(), u.dimensions())); }, fwd, "out must not overlap u"));
  hybrid::H3State wrong_batch = hybrid::make_h3_state(c, 3);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(u, &wrong_batch); }, fwd, "state.shift_state has shape [3, 8, 5], expected [B=2, D=8, N-1=5]"));
  hybrid::H3State wrong_modes = hybrid::make_h3_state(c, 2);
  wrong_modes.diagonal_state = Tensor<float, 4>(2, 32, 2, 2);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(u, &wrong_modes); }, fwd, "state.diagonal_state has shape [2, 32, 2, 2], expected [B=2, Hh*hd*hd=16, M=3, 2=2]"));

  const std::string st = "H3Layer::step";
  hybrid::H3State state = hybrid::make_h3_state(c, 2);
  Tensor<float, 2> ut(2, 8), yt(2, 8), bad_yt(2, 7);
  ut.setConstant(0.5f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(Tensor<float, 2>(2, 7), state, TensorView<float, 2>(yt.data(), yt.dimensions())); }, st, "u has shape [2, 7], expected [B, D=8] with B > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(ut, state, TensorView<float, 2>(bad_yt.data(), bad_yt.dimensions())); }, st, "out has shape [2, 7], expected [B=2, D=8] like u"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(ut, state, TensorView<float, 2>(ut.data(), ut.dimensions())); }, st, "out must not overlap u"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(ut, wrong_batch, TensorView<float, 2>(yt.data(), yt.dimensions())); }, st, "state.shift_state has shape [3, 8, 5]"));
}

}  // namespace h3_test
}  // namespace tokenmix
