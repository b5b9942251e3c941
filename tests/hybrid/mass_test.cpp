// hybrid::Mass (A2Mamba's MASS token mixer) against its oracle (ref::mass: the spec's loops in
// double) on odd maps: local mode (A2SSM; adaptive dilations dividing the sides or not), global mode
// (stage 4; the bias table at its size and bicubically resized), no rpb, window dilation 2; the
// oracle and the op against the PyTorch fixtures (tests/data/mass, made by
// tests/data/make_mass_fixture.py from the released Attention); threads bitwise; bad input.

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "hybrid/random_weights.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/fixture.hpp"
#include "support/random.hpp"
#include "tokenmix/hybrid/mass.hpp"
#include "tokenmix/io/json.hpp"
#include "tokenmix/reference/mass.hpp"

namespace tokenmix {
namespace mass_test {

using testing::Rng;
using testing::tolerance::mass;

struct Case {
  Index batch, height, width, channels, heads, kernel_size;
  bool global_mode = false;
  std::array<Index, 2> global_grid{};
  bool use_rpb = true;
  Index window_dilation = 1;
  std::uint64_t seed = 1;
  hybrid::MassConfig config() const {
    hybrid::MassConfig c;
    c.channels = channels, c.heads = heads, c.kernel_size = kernel_size, c.global_mode = global_mode;
    c.global_grid = global_grid, c.use_rpb = use_rpb, c.window_dilation = window_dilation;
    return c;
  }
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " H=" << height << " W=" << width << " C=" << channels << " nh=" << heads
       << " K=" << kernel_size << (global_mode ? " global" : " local") << " rpb=" << use_rpb
       << " window_dilation=" << window_dilation << " seed=" << seed;
    return os.str();
  }
};

TEST(MassTest, MatchesOracle) {
  for (const Case& c : {Case{2, 9, 11, 16, 4, 3},                         // dil (3, 3): column groups 4, 4, 3
                        Case{1, 7, 12, 16, 2, 3, false, {}, true, 1, 2},  // dil (2, 3)
                        Case{1, 23, 20, 32, 4, 5, false, {}, true, 1, 3},  // dil (4, 4): K·dil < side
                        Case{1, 14, 14, 24, 2, 7, false, {}, false, 1, 4},  // no rpb, dh 12
                        Case{1, 12, 13, 16, 4, 3, false, {}, true, 2, 5},  // window dilation 2
                        Case{1, 5, 5, 16, 4, 3, true, {5, 5}, true, 1, 6},  // global, bias at its size
                        Case{2, 6, 5, 16, 2, 3, true, {4, 4}, true, 1, 7},  // global, bias 16 -> 30 tokens
                        Case{1, 7, 7, 24, 2, 7, true, {7, 7}, false, 1, 8}}) {
    const hybrid::MassWeights w = testing::random_mass_weights(c.config(), c.seed);
    Rng rng(c.seed + 50);
    const Tensor<float, 4> x = testing::random_normal<4>({c.batch, c.height, c.width, c.channels}, 0.f, 1.f, rng);
    hybrid::Mass op(c.config(), w);
    const Tensor<float, 4> y = op.forward(x);
    EXPECT_TRUE(testing::all_close(y, ref::mass<double>(c.config(), w, x), mass, c.describe()));
    EXPECT_TRUE(testing::bitwise_equal(op.forward(x), y, c.describe() + " second call (buffers reused)"));
    EXPECT_TRUE(testing::bitwise_equal(hybrid::mass(c.config(), w, x), y, c.describe() + " hybrid::mass"));
  }
}

TEST(MassTest, ThreadCountDoesNotChangeResults) {
  for (bool global : {false, true}) {
    const Case c{2, 10, 13, 16, 4, 3, global, {5, 6}, true, 1, 9};
    const hybrid::MassWeights w = testing::random_mass_weights(c.config(), c.seed);
    Rng rng(7);
    const Tensor<float, 4> x = testing::random_normal<4>({2, 10, 13, 16}, 0.f, 1.f, rng);
    const Tensor<float, 4> single = hybrid::Mass(c.config(), w).forward(x);
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      EXPECT_TRUE(testing::bitwise_equal(hybrid::Mass(c.config(), w, pool.device()).forward(x), single,
                                         c.describe() + " " + std::to_string(threads) + " threads"));
    }
  }
}

// The bicubic resize of the global bias against hand values: a constant table stays constant (the
// four tap weights sum to 1) and a size-preserving resize is a copy.
TEST(MassTest, BicubicResizeOfTheGlobalBias) {
  Tensor<float, 3> table(2, 4, 4);
  table.setConstant(0.75f);
  const Tensor<float, 3> up = hybrid::detail::resize_bicubic(table.data(), 2, 4, 9);
  for (Index i = 0; i < up.size(); ++i) EXPECT_NEAR(up.data()[i], 0.75f, 1e-6f) << i;
  Rng rng(3);
  const Tensor<float, 3> random = testing::random_normal<3>({2, 4, 4}, 0.f, 1.f, rng);
  EXPECT_TRUE(testing::bitwise_equal(hybrid::detail::resize_bicubic(random.data(), 2, 4, 4), random, "same size"));
}

TEST(MassFixtureTest, OracleAndOpMatchTheReleasedCode) {
  for (const std::string name : {"local_small", "local_rect", "global_native", "global_resized"}) {
    if (!testing::fixture_has("mass", name, "y")) {
      ADD_FAILURE() << "missing fixture mass/" << name;
      continue;
    }
    const io::JsonValue cfg = io::parse_json_file(testing::fixture_dir("mass", name) + "config.json");
    hybrid::MassConfig c;
    c.channels = cfg.at("C").as<Index>(), c.heads = cfg.at("nh").as<Index>(), c.kernel_size = cfg.at("K").as<Index>();
    c.global_mode = cfg.at("global_mode").as_bool();
    if (c.global_mode)
      c.global_grid = {cfg.at("image_size").at(std::size_t(0)).as<Index>(), cfg.at("image_size").at(std::size_t(1)).as<Index>()};
    auto load1 = [&](const char* key) { return testing::load_fixture<1>("mass", name, key); };
    auto load4 = [&](const char* key) { return testing::load_fixture<4>("mass", name, key); };
    hybrid::MassWeights w;
    w.qkv_weight = load4("qkv_weight"), w.qkv_bias = load1("qkv_bias");
    w.gate_0_weight = load4("gate_0_weight"), w.gate_0_bias = load1("gate_0_bias");
    w.gate_1_weight = load1("gate_1_weight"), w.gate_1_bias = load1("gate_1_bias");
    w.gate_1_running_mean = load1("gate_1_running_mean"), w.gate_1_running_var = load1("gate_1_running_var");
    w.lepe_weight = load4("lepe_weight"), w.lepe_bias = load1("lepe_bias");
    w.norm_weight = load1("norm_weight"), w.norm_bias = load1("norm_bias");
    w.proj_0_weight = load1("proj_0_weight"), w.proj_0_bias = load1("proj_0_bias");
    w.proj_1_weight = load4("proj_1_weight"), w.proj_1_bias = load1("proj_1_bias");
    w.rpb = testing::load_fixture<3>("mass", name, "rpb_0");
    if (c.global_mode) {
      w.global_rpb = load4("rpb_2");
    } else {
      w.ssm.conv2d_weight = load4("ssm_conv2d_weight"), w.ssm.conv2d_bias = load1("ssm_conv2d_bias");
      w.ssm.x_proj_weight = testing::load_fixture<2>("mass", name, "ssm_x_proj_weight");
      w.ssm.dt_projs_weight = testing::load_fixture<2>("mass", name, "ssm_dt_projs_weight");
      w.ssm.dt_projs_bias = load1("ssm_dt_projs_bias");
      w.ssm.A_logs = testing::load_fixture<2>("mass", name, "ssm_A_logs");
      w.ssm.Ds = load1("ssm_Ds");
      w.ssm.state_fusion_weight = load4("ssm_state_fusion_weight"), w.ssm.state_fusion_bias = load1("ssm_state_fusion_bias");
    }
    const Tensor<float, 4> x = load4("x"), expected = load4("y");
    EXPECT_TRUE(testing::check_fixture(ref::mass<double>(c, w, x), expected, testing::tolerance::oracle_vs_fixture,
                                       "mass/" + name + " oracle"));
    hybrid::Mass op(c, w);
    EXPECT_TRUE(testing::check_fixture(op.forward(x), expected, mass, "mass/" + name + " op"));
    EXPECT_TRUE(testing::check_fixture(op.attn1(), testing::load_fixture<5>("mass", name, "attn1"), mass,
                                       "mass/" + name + " attn1"));
    EXPECT_TRUE(testing::check_fixture(op.attn2(), testing::load_fixture<5>("mass", name, "attn2"), mass,
                                       "mass/" + name + " attn2"));
  }
}

TEST(MassTest, RejectsBadInputWithClearErrors) {
  const Case c{1, 9, 9, 16, 4, 3};
  const hybrid::MassWeights w = testing::random_mass_weights(c.config(), 11);
  const std::string op = "Mass";
  auto config_with = [&](auto setter) { auto copy = c.config(); setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(config_with([](auto& x) { x.heads = 3; }), w); }, op, "an even number of heads"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(config_with([](auto& x) { x.heads = 8; }), w); }, op, "a multiple of 4 channels (RoPE2D)"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(config_with([](auto& x) { x.kernel_size = 4; }), w); }, op, "an odd kernel_size"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(config_with([](auto& x) { x.global_mode = true; }), w); }, op, "global_mode with use_rpb needs global_grid"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(config_with([](auto& x) { x.use_rpb = false; }), w); }, op, "use_rpb is false but rpb"));
  auto with = [&](auto setter) { hybrid::MassWeights copy = w; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(c.config(), with([](auto& x) { x.qkv_weight = Tensor<float, 4>(48, 16, 3, 3); })); }, op, "qkv_weight has shape [48, 16, 3, 3], expected [3C=48, C=16, 1=1, 1=1]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(c.config(), with([](auto& x) { x.rpb = Tensor<float, 3>(2, 3, 3); })); }, op, "rpb has shape [2, 3, 3], expected [nh/2=2, 2K-1=5, 2K-1=5]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(c.config(), with([](auto& x) { x.gate_1_running_var(2) = -1.f; })); }, op, "gate_1_running_var[2] = -1"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::Mass(c.config(), with([](auto& x) { x.ssm.Ds = Tensor<float, 1>(3); })); }, op, "Ds has shape [3], expected [C=16]"));
  hybrid::Mass m(c.config(), w);
  const std::string fwd = "Mass::forward";
  EXPECT_TRUE(testing::throws_error_mentioning([&] { m.forward(Tensor<float, 4>(1, 9, 9, 8)); }, fwd, "x has shape [1, 9, 9, 8], expected [B, H, W, C=16]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { m.forward(Tensor<float, 4>(1, 2, 9, 16)); }, fwd, "expected H and W >= kernel_size·window_dilation = 3"));
  Tensor<float, 4> x(1, 9, 9, 16), wrong(1, 9, 9, 15);
  x.setConstant(0.5f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { m.forward(x, TensorView<float, 4>(wrong.data(), wrong.dimensions())); }, fwd, "out has shape [1, 9, 9, 15]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::mass<double>(c.config(), w, Tensor<float, 4>(1, 2, 2, 16)); }, "ref::mass", "expected H and W >= kernel_size"));
}

}  // namespace mass_test
}  // namespace tokenmix
