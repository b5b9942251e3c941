// hybrid::A2ssm against its oracle (ref::a2ssm: the spec's loops in double) on odd images, N = 1
// (the released setting) and N > 1 (the generalisation), dilations dividing the sides or not; the
// oracle and the op against the PyTorch fixtures (tests/data/a2ssm, made by
// tests/data/make_a2ssm_fixture.py from the released A2SSM); threads bitwise; bad input.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/fixture.hpp"
#include "support/random.hpp"
#include "hybrid/random_weights.hpp"
#include "tokenmix/hybrid/a2ssm.hpp"
#include "tokenmix/io/json.hpp"
#include "tokenmix/reference/a2ssm.hpp"

namespace tokenmix {
namespace a2ssm_test {

using testing::Rng;
using testing::tolerance::a2ssm;

// Post-softmax maps: each (pixel, head) row of K² weights sums to 1.
Tensor<float, 5> random_maps(Index B, Index H, Index W, Index heads, Index K, Rng& rng) {
  Tensor<float, 5> m = testing::random_normal<5>({B, H, W, heads, K * K}, 0.f, 1.f, rng);
  for (Index r = 0; r < m.size() / (K * K); ++r) {
    float* row = m.data() + r * K * K;
    double sum = 0;
    for (Index s = 0; s < K * K; ++s) sum += (row[s] = std::exp(row[s]));
    for (Index s = 0; s < K * K; ++s) row[s] = static_cast<float>(row[s] / sum);
  }
  return m;
}

struct Case {
  Index batch, height, width, channels, heads, d_state, kernel_size;
  std::array<Index, 2> dilation;
  std::uint64_t seed;
  hybrid::A2ssmConfig config() const {
    hybrid::A2ssmConfig c;
    c.channels = channels, c.heads = heads, c.d_state = d_state, c.kernel_size = kernel_size;
    return c;
  }
  std::string describe() const {
    std::ostringstream os;
    os << "B=" << batch << " H=" << height << " W=" << width << " C=" << channels << " nh=" << heads << " N=" << d_state
       << " K=" << kernel_size << " dil=(" << dilation[0] << ", " << dilation[1] << ") seed=" << seed;
    return os.str();
  }
};

TEST(A2ssmTest, MatchesOracle) {
  for (const Case& c : {Case{2, 9, 11, 16, 4, 1, 3, {3, 3}, 1}, Case{1, 7, 12, 8, 2, 1, 3, {2, 4}, 2},
                        Case{1, 8, 9, 8, 2, 2, 3, {2, 3}, 3}, Case{1, 14, 14, 24, 6, 1, 7, {2, 2}, 4},
                        Case{2, 5, 6, 20, 4, 3, 5, {1, 1}, 5}}) {
    const hybrid::A2ssmWeights w = testing::random_a2ssm_weights(c.config(), c.seed);
    Rng rng(c.seed + 50);
    const Tensor<float, 4> x = testing::random_normal<4>({c.batch, c.height, c.width, c.channels}, 0.f, 1.f, rng);
    const Tensor<float, 5> a1 = random_maps(c.batch, c.height, c.width, c.heads / 2, c.kernel_size, rng);
    const Tensor<float, 5> a2 = random_maps(c.batch, c.height, c.width, c.heads / 2, c.kernel_size, rng);
    hybrid::A2ssm op(c.config(), w);
    const Tensor<float, 4> y = op.forward(x, a1, a2, c.dilation);
    EXPECT_TRUE(testing::all_close(y, ref::a2ssm<double>(c.config(), w, x, a1, a2, c.dilation), a2ssm, c.describe()));
    EXPECT_TRUE(testing::bitwise_equal(hybrid::a2ssm(c.config(), w, x, a1, a2, c.dilation), y, c.describe() + " hybrid::a2ssm"));
  }
}

TEST(A2ssmTest, ThreadCountDoesNotChangeResults) {
  const Case c{2, 10, 13, 16, 4, 1, 3, {3, 4}, 6};
  const hybrid::A2ssmWeights w = testing::random_a2ssm_weights(c.config(), c.seed);
  Rng rng(7);
  const Tensor<float, 4> x = testing::random_normal<4>({2, 10, 13, 16}, 0.f, 1.f, rng);
  const Tensor<float, 5> a1 = random_maps(2, 10, 13, 2, 3, rng), a2 = random_maps(2, 10, 13, 2, 3, rng);
  const Tensor<float, 4> single = hybrid::A2ssm(c.config(), w).forward(x, a1, a2, c.dilation);
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    hybrid::A2ssm op(c.config(), w, pool.device());
    EXPECT_TRUE(testing::bitwise_equal(op.forward(x, a1, a2, c.dilation), single, std::to_string(threads) + " threads"));
  }
}

TEST(A2ssmFixtureTest, OracleAndOpMatchTheReleasedCode) {
  for (const std::string name : {"n1_small", "n1_rect", "n2_generalised"}) {
    if (!testing::fixture_has("a2ssm", name, "y")) {
      ADD_FAILURE() << "missing fixture a2ssm/" << name;
      continue;
    }
    const io::JsonValue cfg = io::parse_json_file(testing::fixture_dir("a2ssm", name) + "config.json");
    hybrid::A2ssmConfig c;
    c.channels = cfg.at("C").as<Index>(), c.heads = cfg.at("nh").as<Index>(), c.d_state = cfg.at("N").as<Index>();
    c.dt_rank = cfg.at("R").as<Index>(), c.kernel_size = cfg.at("K").as<Index>();
    const std::array<Index, 2> dil{cfg.at("dil").at(std::size_t(0)).as<Index>(), cfg.at("dil").at(std::size_t(1)).as<Index>()};
    hybrid::A2ssmWeights w;
    w.conv2d_weight = testing::load_fixture<4>("a2ssm", name, "conv2d_weight");
    w.conv2d_bias = testing::load_fixture<1>("a2ssm", name, "conv2d_bias");
    w.x_proj_weight = testing::load_fixture<2>("a2ssm", name, "x_proj_weight");
    w.dt_projs_weight = testing::load_fixture<2>("a2ssm", name, "dt_projs_weight");
    w.dt_projs_bias = testing::load_fixture<1>("a2ssm", name, "dt_projs_bias");
    w.A_logs = testing::load_fixture<2>("a2ssm", name, "A_logs");
    w.Ds = testing::load_fixture<1>("a2ssm", name, "Ds");
    w.state_fusion_weight = testing::load_fixture<4>("a2ssm", name, "state_fusion_weight");
    w.state_fusion_bias = testing::load_fixture<1>("a2ssm", name, "state_fusion_bias");
    const Tensor<float, 4> x = testing::load_fixture<4>("a2ssm", name, "x_ms");
    const Tensor<float, 5> a1 = testing::load_fixture<5>("a2ssm", name, "attn1");
    const Tensor<float, 5> a2 = testing::load_fixture<5>("a2ssm", name, "attn2");
    const Tensor<float, 4> expected = testing::load_fixture<4>("a2ssm", name, "y");
    EXPECT_TRUE(testing::check_fixture(ref::a2ssm<double>(c, w, x, a1, a2, dil), expected,
                                       testing::tolerance::oracle_vs_fixture, "a2ssm/" + name + " oracle"));
    hybrid::A2ssm op(c, w);
    EXPECT_TRUE(testing::check_fixture(op.forward(x, a1, a2, dil), expected, a2ssm, "a2ssm/" + name + " op"));
  }
}

TEST(A2ssmTest, RejectsBadInputWithClearErrors) {
  const Case c{1, 9, 9, 8, 2, 1, 3, {3, 3}, 8};
  const hybrid::A2ssmWeights w = testing::random_a2ssm_weights(c.config(), c.seed);
  const std::string op = "A2ssm";
  auto config_with = [&](auto setter) { auto copy = c.config(); setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::A2ssm(config_with([](auto& x) { x.heads = 3; }), w); }, op, "an even number of heads dividing channels"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::A2ssm(config_with([](auto& x) { x.conv_kernel = 4; }), w); }, op, "an odd conv_kernel"));
  auto with = [&](auto setter) { hybrid::A2ssmWeights copy = w; setter(copy); return copy; };
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::A2ssm(c.config(), with([](auto& x) { x.x_proj_weight = Tensor<float, 2>(4, 8); })); }, op, "x_proj_weight has shape [4, 8], expected [R+2N=3, C=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { hybrid::A2ssm(c.config(), with([](auto& x) { x.state_fusion_weight = Tensor<float, 4>(2, 2, 3, 3); })); }, op, "state_fusion_weight has shape [2, 2, 3, 3], expected [nh=2, nh=2, 1=1, 1=1]"));
  hybrid::A2ssm a(c.config(), w);
  const std::string fwd = "A2ssm::forward";
  Tensor<float, 4> x(1, 9, 9, 8);
  Tensor<float, 5> maps(1, 9, 9, 1, 9), bad_maps(1, 9, 9, 1, 8);
  x.setConstant(0.1f), maps.setConstant(1.f / 9);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { a.forward(Tensor<float, 4>(1, 9, 9, 7), maps, maps, {1, 1}); }, fwd, "x_ms has shape [1, 9, 9, 7], expected [B, H, W, C=8]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { a.forward(x, bad_maps, maps, {1, 1}); }, fwd, "attn1 has shape [1, 9, 9, 1, 8], expected [B=1, H=9, W=9, nh/2=1, K*K=9]"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { a.forward(x, maps, bad_maps, {1, 1}); }, fwd, "attn2 has shape"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { a.forward(x, maps, maps, {4, 1}); }, fwd, "dilation[0] = 4 with kernel_size 3 does not fit the height 9"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { a.forward(x, maps, maps, {1, 0}); }, fwd, "dilation[1] = 0"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::a2ssm<double>(c.config(), w, x, maps, maps, {4, 1}); }, "ref::a2ssm", "dilation[0] = 4"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { ref::a2ssm<double>(c.config(), w, Tensor<float, 4>(1, 9, 9, 7), maps, maps, {1, 1}); }, "ref::a2ssm", "x_ms has shape"));
}

}  // namespace a2ssm_test
}  // namespace tokenmix
