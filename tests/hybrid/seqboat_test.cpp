// hybrid::SeqBoatLayer against its oracle (ref::seqboat: direct EMA convolution and explicit window
// loops in double) in every configuration (causal / bidirectional, softmax / relu², simple / local /
// rotary positions, the four norms pre and post), the oracle and the layer against the PyTorch
// fixtures (tests/data/seqboat, made by tests/data/make_seqboat_fixture.py from the released code),
// the properties (every token activated with a window covering L == the dense GAU oracle; streaming:
// step == forward, split prefill == whole; threads bitwise; the activated count falls with the
// router bias) and every bad-input rule.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/fixture.hpp"
#include "support/random.hpp"
#include "support/sequence.hpp"
#include "tokenmix/hybrid/seqboat.hpp"
#include "tokenmix/io/json.hpp"
#include "tokenmix/reference/seqboat.hpp"

namespace tokenmix {
namespace seqboat_test {

using attention::LocalAttentionKind;
using hybrid::SeqBoatNorm;
using hybrid::SeqBoatPosition;
using testing::Rng;
using testing::slice_tokens;
using testing::token;
using testing::tolerance::seqboat;

// Weights at scales where every branch shows in the output (as the fixture script's), EMA decays in
// (0.5, 0.95); router_bias shifts logit 1 (more or fewer activated tokens).
hybrid::SeqBoatWeights random_weights(const hybrid::SeqBoatConfig& c, std::uint64_t seed, float router_bias = 0.f) {
  Rng rng(seed);
  const Index D = c.d_model, Dp = c.ema_rows(), N = c.ndim, Z = c.zdim, E = c.hdim;
  const float sd = 1.0f / std::sqrt(static_cast<float>(D)), se = 1.0f / std::sqrt(static_cast<float>(E));
  hybrid::SeqBoatWeights w;
  w.norm_weight = testing::random_normal<1>({D}, 1.f, 0.2f, rng);
  w.norm_bias = testing::random_normal<1>({D}, 0.f, 0.1f, rng);
  w.norm_scalar = testing::random_normal<1>({1}, 1.f, 0.2f, rng);
  w.norm_running_mean = testing::random_normal<1>({D}, 0.f, 0.3f, rng);
  w.norm_running_var = testing::random_uniform<1>({D}, 0.5f, 2.f, rng);
  w.move_delta = testing::random_uniform<3>({Dp, N, 1}, -0.8f, 0.8f, rng);
  w.move_alpha = testing::random_uniform<3>({Dp, N, 1}, -0.8f, 0.8f, rng);
  w.move_beta = testing::random_normal<3>({Dp, N, 1}, 0.f, 0.02f, rng);
  for (Index r = 0; r < Dp; ++r)
    for (Index n = 0; n < N; ++n) w.move_beta(r, n, 0) += n % 2 == 0 ? 1.f : -1.f;
  w.move_gamma = testing::random_normal<2>({Dp, N}, 0.f, 1.f, rng);
  w.move_omega = testing::random_normal<1>({D}, 0.f, 1.f, rng);
  w.q_router_temp = Tensor<float, 1>(1);
  w.q_router_temp(0) = std::log(0.3f * std::sqrt(static_cast<float>(D)));
  w.hx_proj_weight = testing::random_normal<2>({2 + D, D}, 0.f, sd, rng);
  w.hx_proj_bias = testing::random_normal<1>({2 + D}, 0.f, 0.1f, rng);
  w.hx_proj_bias(1) += router_bias;
  w.mx_proj_weight = testing::random_normal<2>({Z + 2 * E, D}, 0.f, sd, rng);
  w.mx_proj_bias = testing::random_normal<1>({Z + 2 * E}, 0.f, 0.1f, rng);
  w.gamma = testing::random_normal<2>({2, Z}, 1.5f, 0.3f, rng);
  w.beta = testing::random_normal<2>({2, Z}, 0.f, 0.3f, rng);
  w.h_proj_weight = testing::random_normal<2>({D, E}, 0.f, 3.f * se, rng);
  w.h_proj_bias = testing::random_normal<1>({D}, 0.f, 0.1f, rng);
  w.rel_pos_bias = testing::random_normal<1>({std::max<Index>(c.bias_entries(), 1)}, 0.f, 0.5f, rng);
  if (c.bias_entries() == 0) w.rel_pos_bias = Tensor<float, 1>();
  return w;
}

hybrid::SeqBoatConfig make_config(Index D, Index Z, Index E, Index N, Index W, bool bidirectional,
                                  LocalAttentionKind kind, SeqBoatPosition position, SeqBoatNorm norm, bool prenorm) {
  hybrid::SeqBoatConfig c;
  c.d_model = D, c.zdim = Z, c.hdim = E, c.ndim = N, c.window = W, c.max_positions = 16;
  c.bidirectional = bidirectional, c.attention = kind, c.position = position, c.norm = norm, c.prenorm = prenorm;
  return c;
}

std::string describe(const hybrid::SeqBoatConfig& c, Index L) {
  std::ostringstream os;
  os << "L=" << L << " D=" << c.d_model << " Z=" << c.zdim << " E=" << c.hdim << " N=" << c.ndim << " W=" << c.window
     << " bidirectional=" << c.bidirectional << " relu2=" << (c.attention == LocalAttentionKind::relu_squared)
     << " position=" << int(c.position) << " norm=" << int(c.norm) << " prenorm=" << c.prenorm;
  return os.str();
}

Tensor<float, 3> random_input(Index B, Index L, Index D, std::uint64_t seed) {
  Rng rng(seed);
  return testing::random_normal<3>({B, L, D}, 0.f, 1.f, rng);
}

// Every mode combination on odd shapes (sequences longer than the 16-query tile of local_attention
// and than the bias table's M = 16, so the clamp is live).
TEST(SeqBoatTest, MatchesOracleInEveryConfiguration) {
  std::uint64_t seed = 1;
  for (bool bidirectional : {false, true})
    for (auto kind : {LocalAttentionKind::softmax, LocalAttentionKind::relu_squared})
      for (auto position : {SeqBoatPosition::simple, SeqBoatPosition::local, SeqBoatPosition::rotary})
        for (auto norm : {SeqBoatNorm::layer_norm, SeqBoatNorm::rms_norm, SeqBoatNorm::scale_norm, SeqBoatNorm::batch_norm}) {
          const bool prenorm = seed % 2 == 0;
          const auto c = make_config(12, 6, 10, 3, 3, bidirectional, kind, position, norm, prenorm);
          const Tensor<float, 3> x = random_input(2, 37, 12, seed + 100);
          // Draw weights until both sequences activate some but not all of their tokens.
          for (std::uint64_t draw = seed;; draw += 1000) {
            const auto w = random_weights(c, draw);
            hybrid::SeqBoatLayer layer(c, w);
            const Tensor<float, 3> y = layer.forward(x);
            const auto& m = layer.activated();
            if ((m[0] == 0 || m[0] == 37 || m[1] == 0 || m[1] == 37) && draw < seed + 10000) continue;
            EXPECT_TRUE(testing::all_close(y, ref::seqboat<double>(c, w, x), seqboat,
                                           describe(c, 37) + " activated " + std::to_string(m[0]) + ", " +
                                               std::to_string(m[1])));
            break;
          }
          ++seed;
        }
}

// Every token activated and a window covering the sequence: the dense GAU (the released code's
// uncompressed path), checked through the oracle with a huge router bias (gate -> 1 is not
// required: the gate multiplies h in both).
TEST(SeqBoatTest, AllActivatedWithWholeWindowMatchesTheOracle) {
  for (bool bidirectional : {false, true}) {
    const auto c = make_config(8, 4, 8, 2, 30, bidirectional, LocalAttentionKind::softmax, SeqBoatPosition::simple,
                               SeqBoatNorm::layer_norm, true);
    const auto w = random_weights(c, 7, 50.f);
    const Tensor<float, 3> x = random_input(2, 25, 8, 8);
    hybrid::SeqBoatLayer layer(c, w);
    const Tensor<float, 3> y = layer.forward(x);
    EXPECT_TRUE(testing::all_close(y, ref::seqboat<double>(c, w, x), seqboat, describe(c, 25)));
    EXPECT_TRUE(testing::bitwise_equal(hybrid::seqboat(c, w, x), y, describe(c, 25) + " hybrid::seqboat"));
    for (Index m : layer.activated()) EXPECT_EQ(m, 25);
  }
}

// Fewer activated tokens as the router bias falls; none activated leaves out = silu(x + hx).
TEST(SeqBoatTest, RouterBiasControlsTheActivatedTokens) {
  const auto c = make_config(8, 4, 8, 2, 3, false, LocalAttentionKind::softmax, SeqBoatPosition::simple,
                             SeqBoatNorm::rms_norm, true);
  const Tensor<float, 3> x = random_input(1, 40, 8, 9);
  Index previous = 41;
  for (float bias : {50.f, 1.f, 0.f, -1.f, -50.f}) {
    const auto w = random_weights(c, 10, bias);
    hybrid::SeqBoatLayer layer(c, w);
    const Tensor<float, 3> y = layer.forward(x);
    const Index m = layer.activated()[0];
    EXPECT_LE(m, previous) << "router bias " << bias;
    previous = m;
    EXPECT_TRUE(testing::all_close(y, ref::seqboat<double>(c, w, x), seqboat, "router bias " + std::to_string(bias)));
  }
  EXPECT_EQ(previous, 0);
}

// Streaming (causal): token-by-token steps and a prefill split anywhere give the whole forward.
TEST(SeqBoatTest, StreamingMatchesTheWholeForward) {
  for (auto position : {SeqBoatPosition::simple, SeqBoatPosition::local, SeqBoatPosition::rotary}) {
    const auto c = make_config(10, 6, 8, 3, 4, false, LocalAttentionKind::softmax, position, SeqBoatNorm::layer_norm,
                               position != SeqBoatPosition::local);
    const auto w = random_weights(c, 20 + int(position));
    const Tensor<float, 3> x = random_input(2, 33, 10, 21);
    hybrid::SeqBoatLayer layer(c, w);
    const Tensor<float, 3> whole = layer.forward(x);
    const std::string where = describe(c, 33);
    for (Index split : {Index(1), Index(10), Index(32)}) {
      hybrid::SeqBoatState state = hybrid::make_seqboat_state(c, 2);
      const Tensor<float, 3> first = layer.forward(slice_tokens(x, 0, split), &state);
      const Tensor<float, 3> second = layer.forward(slice_tokens(x, split, 33), &state);
      EXPECT_TRUE(testing::all_close(first, slice_tokens(whole, 0, split), seqboat, where + " first part"));
      EXPECT_TRUE(testing::all_close(second, slice_tokens(whole, split, 33), seqboat, where + " second part"));
    }
    hybrid::SeqBoatState state = hybrid::make_seqboat_state(c, 2);
    Tensor<float, 2> yt(2, 10);
    for (Index t = 0; t < 33; ++t) {
      layer.step(token(x, t), state, TensorView<float, 2>(yt.data(), yt.dimensions()));
      for (Index b = 0; b < 2; ++b)
        for (Index d = 0; d < 10; ++d)
          ASSERT_NEAR(yt(b, d), whole(b, t, d), 1e-5 + 1e-5 * std::fabs(whole(b, t, d))) << where << " step " << t;
    }
    EXPECT_EQ(state.tokens, 33);
  }
}

TEST(SeqBoatTest, ThreadCountDoesNotChangeResults) {
  const auto c = make_config(24, 8, 16, 4, 5, true, LocalAttentionKind::relu_squared, SeqBoatPosition::simple,
                             SeqBoatNorm::layer_norm, false);
  const auto w = random_weights(c, 30);
  const Tensor<float, 3> x = random_input(3, 50, 24, 31);
  const Tensor<float, 3> single = hybrid::SeqBoatLayer(c, w).forward(x);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    hybrid::SeqBoatLayer layer(c, w, pool.device());
    EXPECT_TRUE(testing::bitwise_equal(layer.forward(x), single, std::to_string(threads) + " threads"));
  }
}

// ---- fixtures from the PyTorch transcription of the released code -----------------------------------

TEST(SeqBoatFixtureTest, OracleAndLayerMatchTheReleasedCode) {
  for (const std::string name : {"causal_softmax_simple", "bidir_relu2_simple", "causal_softmax_rotary", "all_active"}) {
    const io::JsonValue cfg = io::parse_json_file(testing::fixture_dir("seqboat", name) + "config.json");
    hybrid::SeqBoatConfig c;
    c.d_model = cfg.at("D").as<Index>(), c.zdim = cfg.at("Z").as<Index>(), c.hdim = cfg.at("E").as<Index>();
    c.ndim = cfg.at("N").as<Index>(), c.window = cfg.at("W").as<Index>();
    if (cfg.contains("M") && !cfg.at("M").is_null()) c.max_positions = cfg.at("M").as<Index>();
    c.bidirectional = cfg.at("bidirectional").as<bool>();
    c.attention = cfg.at("attention").as<std::string>() == "relu2" ? LocalAttentionKind::relu_squared
                                                                   : LocalAttentionKind::softmax;
    c.position = cfg.at("position").as<std::string>() == "rotary" ? SeqBoatPosition::rotary : SeqBoatPosition::simple;
    const std::string norm = cfg.at("norm").as<std::string>();
    c.norm = norm == "rmsnorm" ? SeqBoatNorm::rms_norm : norm == "scalenorm" ? SeqBoatNorm::scale_norm : SeqBoatNorm::layer_norm;
    c.prenorm = cfg.at("prenorm").as<bool>();
    c.norm_eps = static_cast<float>(cfg.at("norm_eps").as<double>());
    c.act_bias = static_cast<float>(cfg.at("act_bias").as<double>());
    auto load1 = [&](const char* f) { return testing::load_fixture<1>("seqboat", name, f); };
    auto load2 = [&](const char* f) { return testing::load_fixture<2>("seqboat", name, f); };
    auto load3 = [&](const char* f) { return testing::load_fixture<3>("seqboat", name, f); };
    hybrid::SeqBoatWeights w;
    if (c.norm == SeqBoatNorm::scale_norm) w.norm_scalar = load1("norm_norm_scalar");
    else w.norm_weight = load1("norm_norm_weight");
    if (c.norm == SeqBoatNorm::layer_norm) w.norm_bias = load1("norm_norm_bias");
    w.move_delta = load3("move_delta"), w.move_alpha = load3("move_alpha"), w.move_beta = load3("move_beta");
    w.move_gamma = load2("move_gamma"), w.move_omega = load1("move_omega"), w.q_router_temp = load1("q_router_temp");
    w.hx_proj_weight = load2("hx_proj_weight"), w.hx_proj_bias = load1("hx_proj_bias");
    w.mx_proj_weight = load2("mx_proj_weight"), w.mx_proj_bias = load1("mx_proj_bias");
    w.gamma = load2("gamma"), w.beta = load2("beta");
    w.h_proj_weight = load2("h_proj_weight"), w.h_proj_bias = load1("h_proj_bias");
    if (c.position == SeqBoatPosition::simple) w.rel_pos_bias = load1("rel_pos_bias_rel_pos_bias");
    const Tensor<float, 3> x = testing::load_fixture<3>("seqboat", name, "x");
    const Tensor<float, 3> expected = testing::load_fixture<3>("seqboat", name, "out");
    EXPECT_TRUE(testing::check_fixture(ref::seqboat<double>(c, w, x), expected, testing::tolerance::oracle_vs_fixture,
                                       "seqboat/" + name + " oracle"));
    hybrid::SeqBoatLayer layer(c, w);
    EXPECT_TRUE(testing::check_fixture(layer.forward(x), expected, seqboat, "seqboat/" + name + " layer"));
    const auto& counts = cfg.at("activated_counts").as_array();
    for (std::size_t b = 0; b < counts.size(); ++b)
      EXPECT_EQ(layer.activated()[b], counts[b].as<Index>()) << name << " row " << b;
  }
}

// ---- bad input -------------------------------------------------------------------------------

TEST(SeqBoatTest, RejectsBadInputWithClearErrors) {
  const auto c = make_config(8, 4, 6, 2, 3, false, LocalAttentionKind::softmax, SeqBoatPosition::simple,
                             SeqBoatNorm::layer_norm, true);
  const auto w = random_weights(c, 40);
  const std::string op = "SeqBoatLayer";
  auto with_config = [&](auto setter) { auto copy = c; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(with_config([](auto& x) { x.window = 0; }), w); }, op, "must be positive, got d_model=8 zdim=4 hdim=6 ndim=2 window=0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(with_config([](auto& x) { x.zdim = 5, x.position = SeqBoatPosition::rotary; }), random_weights(with_config([](auto& x) { x.zdim = 5, x.position = SeqBoatPosition::rotary; }), 1)); }, op, "zdim=5 must be even for rotary positions"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(with_config([](auto& x) { x.norm_eps = 0.f; }), w); }, op, "norm_eps must be finite and > 0"));
  auto with = [&](auto setter) { hybrid::SeqBoatWeights copy = w; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.move_delta = Tensor<float, 3>(16, 2, 1); })); }, op, "move_delta has shape [16, 2, 1], expected [D'=8, N=2, 1=1]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.hx_proj_weight = Tensor<float, 2>(8, 8); })); }, op, "hx_proj_weight has shape [8, 8], expected [2+D=10, D=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.mx_proj_weight = Tensor<float, 2>(15, 8); })); }, op, "mx_proj_weight has shape [15, 8], expected [Z+2E=16, D=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.rel_pos_bias = Tensor<float, 1>(30); })); }, op, "rel_pos_bias has shape [30], expected [2M-1=31]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.norm_bias = Tensor<float, 1>(7); })); }, op, "norm_bias has shape [7], expected [D=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::SeqBoatLayer(c, with([](auto& x) { x.q_router_temp(0) = NAN; })); }, op, "q_router_temp must be finite"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::seqboat<double>(c, with([](auto& x) { x.gamma = Tensor<float, 2>(2, 3); }), Tensor<float, 3>(1, 2, 8)); }, "ref::seqboat", "gamma has shape [2, 3], expected [2=2, Z=4]"));

  hybrid::SeqBoatLayer layer(c, w);
  const std::string fwd = "SeqBoatLayer::forward";
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(Tensor<float, 3>(2, 5, 7)); }, fwd, "x has shape [2, 5, 7], expected [B, L, D=8] with B > 0"));
  Tensor<float, 3> x(2, 5, 8), bad_out(2, 4, 8);
  x.setConstant(0.5f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(x, TensorView<float, 3>(bad_out.data(), bad_out.dimensions())); }, fwd, "out has shape [2, 4, 8], expected [B=2, L=5, D=8] like x"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(x, TensorView<float, 3>(x.data(), x.dimensions())); }, fwd, "out must not overlap x"));
  hybrid::SeqBoatState wrong = hybrid::make_seqboat_state(c, 3);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(x, &wrong); }, fwd, "state.ema_state has shape [3, 8, 2, 2], expected [B=2, D=8, N=2, 2=2]"));
  hybrid::SeqBoatState bad_count = hybrid::make_seqboat_state(c, 2);
  bad_count.cached(1) = 2;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.forward(x, &bad_count); }, fwd, "state.cached[1] = 2 must be in [0, min(W, tokens)]"));
  const auto bc = with_config([](auto& x) { x.bidirectional = true; });
  hybrid::SeqBoatLayer bidirectional(bc, random_weights(bc, 41));
  hybrid::SeqBoatState state = hybrid::make_seqboat_state(bc, 2);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { bidirectional.forward(x, &state); }, fwd, "a streaming state needs the causal layer"));
  const std::string st = "SeqBoatLayer::step";
  Tensor<float, 2> xt(2, 8), bad_yt(2, 7);
  hybrid::SeqBoatState s2 = hybrid::make_seqboat_state(c, 2);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(Tensor<float, 2>(2, 6), s2, TensorView<float, 2>(xt.data(), xt.dimensions())); }, st, "x has shape [2, 6], expected [B, D=8] with B > 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { layer.step(xt, s2, TensorView<float, 2>(bad_yt.data(), bad_yt.dimensions())); }, st, "out has shape [2, 7], expected [B=2, D=8] like x"));
}

}  // namespace seqboat_test
}  // namespace tokenmix
