// Neighborhood attention against numbers produced independently of tokenmix: the oracle
// (reference/neighborhood_attention.hpp), the fused op (attention/neighborhood_attention.hpp) and the
// split ops (attention/neighborhood_split.hpp) against tests/data/neighborhood/<case>/, made by
// tests/data/make_neighborhood_fixture.py from NATTEN's public source rules (the Flex mask predicate
// of get_na_flex_mask, the reference mask's get_win_start / get_win_end, the legacy
// get_window_start / get_window_end / get_pb_start), without NATTEN and in float64. Each case's
// params.txt gives the NeighborhoodParams (kernel_size, dilation, stride, causal per axis; scale;
// whether rpb.npy is used); the inputs are the float32 values the float64 reference used.
//
// Set TOKENMIX_FIXTURE_REPORT=1 to print the measured worst errors of every comparison.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "support/compare.hpp"
#include "support/fixture.hpp"
#include "support/tolerance.hpp"
#include "tokenmix/attention/neighborhood_attention.hpp"
#include "tokenmix/attention/neighborhood_split.hpp"
#include "tokenmix/attention/neighborhood_types.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/reference/neighborhood_attention.hpp"

namespace tokenmix {
namespace neighborhood_fixture_cases {  // named: the family's files share one translation unit (tests/CMakeLists.txt)
namespace {

const testing::Tolerance kOracle = testing::tolerance::oracle_vs_fixture;
const testing::Tolerance kFast = testing::tolerance::attention;

std::string case_dir(const std::string& name) { return testing::fixture_dir("neighborhood", name); }

template <int R>
Tensor<float, R> load(const std::string& name, const std::string& file) {
  return testing::load_fixture<R>("neighborhood", name, file);
}


// params.txt: "rank R", "kernel_size K0 ..", "dilation ..", "stride ..", "causal 0|1 ..",
// "scale default|x", "rpb 0|1".
struct CaseParams {
  int rank = 0;
  std::vector<Index> kernel_size, dilation, stride;
  std::vector<int> causal;
  std::optional<float> scale;
  bool rpb = false;
};

CaseParams read_params(const std::string& name) {
  std::ifstream in(case_dir(name) + "params.txt");
  if (!in) throw std::runtime_error("missing " + case_dir(name) + "params.txt");
  CaseParams p;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "rank") {
      ls >> p.rank;
    } else if (key == "kernel_size" || key == "dilation" || key == "stride") {
      auto& dst = key == "kernel_size" ? p.kernel_size : key == "dilation" ? p.dilation : p.stride;
      for (Index x; ls >> x;) dst.push_back(x);
    } else if (key == "causal") {
      for (int x; ls >> x;) p.causal.push_back(x);
    } else if (key == "scale") {
      std::string s;
      ls >> s;
      if (s != "default") p.scale = std::stof(s);
    } else if (key == "rpb") {
      int x = 0;
      ls >> x;
      p.rpb = x != 0;
    }
  }
  const std::size_t R = static_cast<std::size_t>(p.rank);
  if (p.rank < 1 || p.rank > 3 || p.kernel_size.size() != R || p.dilation.size() != R || p.stride.size() != R ||
      p.causal.size() != R)
    throw std::runtime_error("malformed " + case_dir(name) + "params.txt");
  return p;
}

template <int R>
attention::NeighborhoodParams<R> to_params(const CaseParams& c) {
  attention::NeighborhoodParams<R> p;
  for (std::size_t a = 0; a < std::size_t(R); ++a) {
    p.kernel_size[a] = c.kernel_size[a], p.dilation[a] = c.dilation[a], p.stride[a] = c.stride[a];
    p.causal[a] = c.causal[a] != 0;
  }
  p.scale = c.scale;
  return p;
}

// One case: q [B, X.., H, P], k [B, X.., Hkv, P], v [B, X.., Hkv, Pv], rpb [H, 2K-1 ..] (when used),
// out [B, X.., H, Pv], lse [B, X.., H].
template <int R>
struct Case {
  std::string name;
  attention::NeighborhoodParams<R> params;
  Tensor<float, R + 3> q, k, v, out;
  Tensor<float, R + 2> lse;
  std::optional<Tensor<float, R + 1>> rpb_table;

  explicit Case(const std::string& n, const CaseParams& c) : name(n), params(to_params<R>(c)) {
    q = load<R + 3>(n, "q"), k = load<R + 3>(n, "k"), v = load<R + 3>(n, "v"), out = load<R + 3>(n, "out");
    lse = load<R + 2>(n, "lse");
    if (c.rpb) rpb_table = load<R + 1>(n, "rpb");
  }
  std::optional<ConstTensorView<float, R + 1>> rpb() const {
    if (!rpb_table) return std::nullopt;
    return ConstTensorView<float, R + 1>(*rpb_table);
  }
};

template <int R>
void run_oracle(const std::string& name, const CaseParams& c) {
  const Case<R> cs(name, c);
  Tensor<float, R + 2> lse;
  const Tensor<float, R + 3> out = ref::neighborhood_attention<R>(cs.q, cs.k, cs.v, cs.params, cs.rpb(), &lse);
  EXPECT_TRUE(testing::check_fixture(out, cs.out, kOracle, name + " ref out"));
  EXPECT_TRUE(testing::check_fixture(lse, cs.lse, kOracle, name + " ref lse"));
}

template <int R>
void run_fused(const std::string& name, const CaseParams& c) {
  const Case<R> cs(name, c);
  for (const int threads : {1, 2}) {
    ThreadPool pool(threads);
    const Eigen::ThreadPoolDevice* device = threads > 1 ? pool.device() : nullptr;
    const std::string tag = name + (threads > 1 ? " fused (2 threads)" : " fused");
    Tensor<float, R + 2> lse;
    const Tensor<float, R + 3> out =
        attention::neighborhood_attention<R>(cs.q, cs.k, cs.v, cs.params, cs.rpb(), &lse, device);
    EXPECT_TRUE(testing::check_fixture(out, cs.out, kFast, tag + " out"));
    EXPECT_TRUE(testing::check_fixture(lse, cs.lse, kFast, tag + " lse"));
    // Without lse requested: the same output.
    EXPECT_TRUE(testing::check_fixture(attention::neighborhood_attention<R>(cs.q, cs.k, cs.v, cs.params, cs.rpb(), nullptr, device),
                      cs.out, kFast, tag + " out (no lse)"));
  }
}

const char* const kCases[] = {"1d_dil",     "1d_causal_dil",      "1d_causal_stride", "1d_rpb",
                              "2d_dil_rpb", "2d_fullaxis_causal", "2d_gqa",           "2d_stride_even",
                              "3d_dil_rpb", "3d_causal"};

class NeighborhoodFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(NeighborhoodFixture, OracleMatchesFixture) {
  const std::string name = GetParam();
  const CaseParams c = read_params(name);
  switch (c.rank) {
    case 1: run_oracle<1>(name, c); break;
    case 2: run_oracle<2>(name, c); break;
    default: run_oracle<3>(name, c); break;
  }
}

TEST_P(NeighborhoodFixture, FusedMatchesFixture) {
  const std::string name = GetParam();
  const CaseParams c = read_params(name);
  switch (c.rank) {
    case 1: run_fused<1>(name, c); break;
    case 2: run_fused<2>(name, c); break;
    default: run_fused<3>(name, c); break;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, NeighborhoodFixture, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

// Softmax over the last axis (window slots), in double; -inf slots get weight 0.
template <int N>
Tensor<float, N> softmax_last(const Tensor<float, N>& logits) {
  Tensor<float, N> w(logits.dimensions());
  const Index S = logits.dimension(N - 1), rows = logits.size() / S;
  for (Index r = 0; r < rows; ++r) {
    const float* x = logits.data() + r * S;
    double m = -INFINITY, sum = 0;
    for (Index s = 0; s < S; ++s) m = std::max(m, double(x[s]));
    for (Index s = 0; s < S; ++s) sum += std::exp(double(x[s]) - m);
    for (Index s = 0; s < S; ++s) w.data()[r * S + s] = static_cast<float>(std::exp(double(x[s]) - m) / sum);
  }
  return w;
}

// The split ops on the 2-D dilated rpb case: neighborhood_qk equals NATTEN's legacy na2d_qk output
// (scale·q·k + rpb, slots n0·K1 + n1 in ascending key position per axis), and qk -> softmax -> av
// equals the fused output.
TEST(NeighborhoodFixtureSplit, QkSoftmaxAvMatchesFixture) {
  const std::string name = "2d_dil_rpb";
  const CaseParams c = read_params(name);
  ASSERT_EQ(c.rank, 2);
  const Case<2> cs(name, c);
  const Tensor<float, 5> expected_logits = load<5>(name, "logits");
  const Tensor<float, 5> logits = attention::neighborhood_qk<2>(cs.q, cs.k, cs.params, cs.rpb());
  EXPECT_TRUE(testing::check_fixture(logits, expected_logits, kFast, name + " neighborhood_qk"));
  EXPECT_TRUE(testing::check_fixture(attention::neighborhood_av<2>(softmax_last(logits), cs.v, cs.params), cs.out, kFast,
                    name + " qk -> softmax -> av"));
}

}  // namespace
}  // namespace neighborhood_fixture_cases
}  // namespace tokenmix
