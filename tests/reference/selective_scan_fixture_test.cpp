// The selective-scan oracle against numbers produced by a PyTorch formulation of mamba_ssm's
// selective_scan_ref (tests/data/make_selective_scan_fixture.py), and the fast op against the same
// fixture, so the oracle itself is checked by an independent implementation.

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>

#include "support/compare.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/ssm/selective_scan.hpp"

namespace tokenmix {
namespace {

using io::read_npy_float;

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

// Loads tests/data/selective_scan/<case>/ into tensors; B/C rank depends on the case.
struct Fixture {
  std::string dir;
  Tensor<float, 3> u, delta, out, last_state;
  Tensor<float, 2> A;
  std::optional<Tensor<float, 1>> D, delta_bias;
  std::optional<Tensor<float, 3>> z;
  std::optional<Tensor<float, 4>> B4, C4;
  std::optional<Tensor<float, 3>> B3, C3;
  std::optional<Tensor<float, 2>> B2, C2;

  explicit Fixture(const std::string& name) : dir(std::string(TOKENMIX_TEST_DATA_DIR) + "/selective_scan/" + name + "/") {
    u = read_npy_float<3>(dir + "u.npy");
    delta = read_npy_float<3>(dir + "delta.npy");
    A = read_npy_float<2>(dir + "A.npy");
    out = read_npy_float<3>(dir + "out.npy");
    last_state = read_npy_float<3>(dir + "last_state.npy");
    if (file_exists(dir + "D.npy")) D = read_npy_float<1>(dir + "D.npy");
    if (file_exists(dir + "delta_bias.npy")) delta_bias = read_npy_float<1>(dir + "delta_bias.npy");
    if (file_exists(dir + "z.npy")) z = read_npy_float<3>(dir + "z.npy");
    load_operand("B", B4, B3, B2);
    load_operand("C", C4, C3, C2);
  }
  void load_operand(const std::string& name, std::optional<Tensor<float, 4>>& t4, std::optional<Tensor<float, 3>>& t3,
                    std::optional<Tensor<float, 2>>& t2) {
    const auto rank = io::read_npy_raw(dir + name + ".npy").shape.size();
    if (rank == 4) t4 = read_npy_float<4>(dir + name + ".npy");
    if (rank == 3) t3 = read_npy_float<3>(dir + name + ".npy");
    if (rank == 2) t2 = read_npy_float<2>(dir + name + ".npy");
  }
  static ssm::ScanOperand operand(const std::optional<Tensor<float, 4>>& t4, const std::optional<Tensor<float, 3>>& t3,
                                  const std::optional<Tensor<float, 2>>& t2) {
    if (t4) return *t4;
    if (t3) return *t3;
    return *t2;
  }
  ssm::ScanOperand B() const { return operand(B4, B3, B2); }
  ssm::ScanOperand C() const { return operand(C4, C3, C2); }
  ssm::SelectiveScanOptions options() const {
    ssm::SelectiveScanOptions o;
    if (D) o.D = *D;
    if (z) o.z = *z;
    if (delta_bias) {
      o.delta_bias = *delta_bias;
      o.delta_softplus = true;  // the fixture cases with a bias are the Mamba configuration
    }
    return o;
  }
};

class SelectiveScanFixtureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SelectiveScanFixtureTest, OracleMatchesPyTorch) {
  const Fixture f(GetParam());
  const auto r = ref::selective_scan<double>(f.u, f.delta, f.A, f.B(), f.C(), f.options());
  EXPECT_TRUE(testing::all_close(r.out, f.out, testing::tolerance::oracle_vs_fixture, f.dir + " out"));
  EXPECT_TRUE(testing::all_close(r.last_state, f.last_state, testing::tolerance::oracle_vs_fixture,
                                 f.dir + " last_state"));
}

TEST_P(SelectiveScanFixtureTest, FastOpMatchesPyTorch) {
  const Fixture f(GetParam());
  const auto r = ssm::selective_scan(f.u, f.delta, f.A, f.B(), f.C(), f.options());
  EXPECT_TRUE(testing::all_close(r.out, f.out, testing::tolerance::selective_scan, f.dir + " out"));
  EXPECT_TRUE(testing::all_close(r.last_state, f.last_state, testing::tolerance::selective_scan,
                                 f.dir + " last_state"));
}

INSTANTIATE_TEST_SUITE_P(Cases, SelectiveScanFixtureTest,
                         ::testing::Values("mamba_block", "grouped", "time_invariant_B", "time_invariant_BC"));

}  // namespace
}  // namespace tokenmix
