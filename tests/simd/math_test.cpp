// Accuracy of tokenmix::simd's transcendentals and helpers (DESIGN §5, §6) for EVERY xsimd
// architecture compiled into this TU (by its -m flags) and available on the running CPU.
//
// Sweeps (one TEST per function; all archs are evaluated on the same samples so that the double
// reference is computed once per sample):
//   exp, exp2   every 61st float bit pattern where the result is not a constant, every 1021st over
//               all finite floats of both signs, and every float of the subnormal-result range, of
//               the overflow edge, around +-0 and around the points where the rounded result near
//               x = 0 leaves 1 (~19M samples per arch).
//   softplus, sigmoid, silu
//               every 251st float with |x| in [2^-30, 128], every 4093rd over all finite floats,
//               and every float around their thresholds (20; the exp overflow) (~4.5M per arch).
//   Sanitizer / unoptimized builds take every 16th of these samples (kSparse).
// Error metric: |y - ref| / max(ulp(ref), floor), ref = the function in double, ulp(ref) = the
// spacing of floats at ref (2^-149 for subnormal results, so subnormal outputs are measured in
// subnormal ulps), floor = 2^-149 unless the function's comment says otherwise. Results that must be
// exact (0 and +inf beyond the edges, x itself for softplus above 20) are weighted so that any
// difference is reported as a failure. An output +inf counts as 2^128 (one ulp above FLT_MAX).
//
// Typed tests (per arch, skipped when the CPU lacks the arch): special values, fmadd/fnmadd
// rounding, reduce_add.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>

#include <utility>
#include <vector>

#include "support/archs.hpp"
#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"
#include "tokenmix/simd/transpose.hpp"

namespace {

using namespace tokenmix;

// Archs whose simd::fmadd rounds once by construction (others may or may not, depending on whether
// the compiler contracts xsimd's x*y+z).
template <class Arch>
constexpr bool has_fused_fmadd = std::is_same_v<Arch, xsimd::fma3<xsimd::sse4_2>> ||
                                 std::is_same_v<Arch, xsimd::fma3<xsimd::avx>> ||
                                 std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>> ||
                                 std::is_same_v<Arch, xsimd::fma4> || simd::is_avx512<Arch>;

// ---- float bits ---------------------------------------------------------------------------------

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Spacing of floats at |r| (finite r < 2^128, in double): 2^(exponent(r) - 23), and 2^-149 in the
// subnormal range.
double float_ulp(double r) {
  const double a = std::fabs(r);
  if (a < 0x1p-126) return 0x1p-149;
  std::uint64_t u;
  std::memcpy(&u, &a, sizeof u);
  u = ((u >> 52) - 23) << 52;  // same biased exponent minus 23, zero mantissa
  double ulp;
  std::memcpy(&ulp, &u, sizeof ulp);
  return ulp;
}

// ---- functions under test -----------------------------------------------------------------------

enum class Fn { exp, exp2, softplus, sigmoid, silu };
constexpr int kNumFns = 5;

template <class Arch, Fn F>
TOKENMIX_ALWAYS_INLINE simd::vfloat<Arch> apply(simd::vfloat<Arch> x) noexcept {
  if constexpr (F == Fn::exp) return simd::exp<Arch>(x);
  else if constexpr (F == Fn::exp2) return simd::exp2<Arch>(x);
  else if constexpr (F == Fn::softplus) return simd::softplus<Arch>(x);
  else if constexpr (F == Fn::sigmoid) return simd::sigmoid<Arch>(x);
  else return simd::silu<Arch>(x);
}

// y[i] = F(x[i]) with full batches and a padded tail.
template <class Arch, Fn F>
void eval_array(const float* x, float* y, std::size_t n) {
  constexpr std::size_t W = simd::lanes<Arch>;
  std::size_t i = 0;
  for (; i + W <= n; i += W) simd::store<Arch>(y + i, apply<Arch, F>(simd::load<Arch>(x + i)));
  if (i < n) {
    float buf[W] = {};
    for (std::size_t j = i; j < n; ++j) buf[j - i] = x[j];
    simd::store<Arch>(buf, apply<Arch, F>(simd::load<Arch>(buf)));
    for (std::size_t j = i; j < n; ++j) y[j] = buf[j - i];
  }
}

using EvalFn = void (*)(const float*, float*, std::size_t);

struct ArchEntry {
  std::string name;
  bool available;
  std::array<EvalFn, kNumFns> eval;
};

template <class Arch>
ArchEntry make_entry() {
  return {Arch::name(), tokenmix::testing::cpu_has<Arch>(),
          {&eval_array<Arch, Fn::exp>, &eval_array<Arch, Fn::exp2>, &eval_array<Arch, Fn::softplus>,
           &eval_array<Arch, Fn::sigmoid>, &eval_array<Arch, Fn::silu>}};
}

template <class... Archs>
std::vector<ArchEntry> make_entries(tokenmix::testing::type_list<Archs...>) {
  return {make_entry<Archs>()...};
}

const std::vector<ArchEntry>& compiled_archs() {
  static const std::vector<ArchEntry> entries = make_entries(tokenmix::testing::CompiledArchList{});
  return entries;
}

// ---- references ---------------------------------------------------------------------------------

// What F(x) must be: error = |y - ref| * weight, weight = 1 / max(ulp(ref), floor), or kExact where
// y must equal ref (then any difference is a failure).
struct Expect {
  double ref;
  double weight;
};
constexpr double kExact = 0x1p900;
constexpr double kLn2 = 0.69314718055994530942;

// ref rounds to +inf in float from FLT_MAX + ulp/2 = 2^128 - 2^103 on; the band below 2^128 is
// measured in ulps (an output +inf counts as 2^128), at and above 2^128 only +inf is right.
Expect ulp_expect(double ref, double floor = 0x1p-149) {
  if (std::fabs(ref) >= 0x1p128) return {std::copysign(0x1p128, ref), kExact};
  return {ref, 1.0 / std::max(float_ulp(ref), floor)};
}

Expect expect_exp(float x) {
  if (x > 89.0f) return {0x1p128, kExact};   // e^89 > FLT_MAX: +inf
  if (x < -104.0f) return {0.0, kExact};     // e^-104 < 2^-150: rounds to 0
  const double d = x;
  if (std::fabs(d) < 0x1p-30) return ulp_expect(1.0 + d + 0.5 * d * d);  // skip libm where trivial
  return ulp_expect(std::exp(d));
}

Expect expect_exp2(float x) {
  if (x >= 129.0f) return {0x1p128, kExact};
  if (x < -151.0f) return {0.0, kExact};
  const double t = kLn2 * static_cast<double>(x);
  if (std::fabs(t) < 0x1p-30) return ulp_expect(1.0 + t + 0.5 * t * t);
  return ulp_expect(std::exp2(static_cast<double>(x)));
}

// PyTorch's softplus (beta 1, threshold 20): x itself above 20, bit for bit.
Expect expect_softplus(float x) {
  if (x > 20.0f) return {static_cast<double>(x), kExact};
  const double d = x;
  if (std::fabs(d) < 0x1p-30) return ulp_expect(kLn2 + 0.5 * d + 0.125 * d * d);
  return ulp_expect(std::log1p(std::exp(d)));
}

// sigmoid: relative (ulp) error for results >= 2^-105; below, absolute error in units of 2^-128,
// so the bound of 4 units means |error| <= FLT_MIN (results under FLT_MIN are flushed to 0 for
// x < -88.7 because e^-x overflows).
constexpr double kSigmoidFloor = 0x1p-128;
Expect expect_sigmoid(float x) {
  const double d = x;
  if (std::fabs(d) < 0x1p-30) return ulp_expect(0.5 + 0.25 * d, kSigmoidFloor);
  return ulp_expect(1.0 / (1.0 + std::exp(-d)), kSigmoidFloor);
}

// silu = x * sigmoid(x): as sigmoid, scaled by |x| <= 104: floor 2^-121 (absolute error <= 2^-119).
constexpr double kSiluFloor = 0x1p-121;
Expect expect_silu(float x) {
  const double d = x;
  if (std::fabs(d) < 0x1p-30) return ulp_expect(0.5 * d + 0.25 * d * d, kSiluFloor);
  return ulp_expect(d / (1.0 + std::exp(-d)), kSiluFloor);
}

// ---- sample sets --------------------------------------------------------------------------------

struct Segment {
  std::uint32_t begin, end, stride;  // float bit patterns [begin, end), every stride-th
};

// Every stride-th float over all finite floats of both signs (including +-0).
void add_whole_range(std::vector<Segment>& s, std::uint32_t stride) {
  s.push_back({0x00000000u, 0x7f800000u, stride});
  s.push_back({0x80000000u, 0xff800000u, stride});
}
// Every stride-th float in [lo, hi] (lo and hi of the same sign).
void add_interval(std::vector<Segment>& s, float lo, float hi, std::uint32_t stride = 1) {
  const std::uint32_t a = bits_of(lo), b = bits_of(hi);
  if (lo >= 0) s.push_back({a, b + 1, stride});
  else s.push_back({b, a + 1, stride});  // negative floats: larger magnitude, larger pattern
}
// Every stride-th float within `radius` patterns of x, not crossing into the other sign (or NaN).
void add_window(std::vector<Segment>& s, float x, std::uint32_t radius, std::uint32_t stride = 1) {
  const std::uint32_t b = bits_of(x), sign = b & 0x80000000u;
  s.push_back({b - std::min(radius, b - sign), b + radius, stride});
}

// ---- the sweep ----------------------------------------------------------------------------------

struct Stats {
  double max_err = 0;
  float x_at = 0, y_at = 0;
  double ref_at = 0;
};

struct SweepSpec {
  const char* name;
  Fn fn;
  Expect (*expect)(float);
  std::vector<Segment> segments;
  double bound;  // max allowed error (ulp, see the metric)
};

// Largest |y - ref| * weight over the chunk (+inf if some y is NaN); an output +inf counts as
// 2^128. The arrays hold n rounded up to a multiple of 8; entries past n have y = ref = weight = 0.
double chunk_max_error(const float* y, const double* ref, const double* weight, double* yd,
                       std::size_t n) {
  n = (n + 7) / 8 * 8;
  for (std::size_t i = 0; i < n; ++i) yd[i] = y[i];  // vectorized conversion
  using D = xsimd::batch<double>;
  constexpr std::size_t W = D::size;
  static_assert(8 % W == 0, "padding assumes at most 8 doubles per batch");
  const D top(0x1p128);
  D m(0.0);
  auto nan = D(0.0) != D(0.0);
  for (std::size_t i = 0; i < n; i += W) {
    const D v = xsimd::min(top, D::load_unaligned(yd + i));  // +inf -> 2^128; NaN stays NaN
    const D e = xsimd::abs(v - D::load_unaligned(ref + i)) * D::load_unaligned(weight + i);
    nan = nan | xsimd::isnan(e);  // not e != e: xsimd 8.1's != is ordered on AVX / AVX-512
    m = xsimd::max(m, e);
  }
  if (xsimd::any(nan)) return INFINITY;
  alignas(64) double lanes[W];
  m.store_aligned(lanes);
  double r = 0;
  for (double v : lanes) r = std::max(r, v);
  return r;
}

// The same error for one element.
double element_error(float y, double ref, double weight) {
  if (y != y) return INFINITY;
  const double v = std::min(static_cast<double>(y), 0x1p128);
  return std::fabs(v - ref) * weight;
}

void run_sweep(const SweepSpec& spec) {
  const auto& archs = compiled_archs();
  std::vector<Stats> stats(archs.size());
  constexpr std::size_t kChunk = 1 << 12;  // keeps the chunk arrays in L2
  std::vector<float> x(kChunk + 8), y(kChunk + 8);
  std::vector<double> ref(kChunk + 8), weight(kChunk + 8), yd(kChunk + 8);
  std::uint64_t total = 0;

  auto process = [&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      const Expect e = spec.expect(x[i]);
      ref[i] = e.ref;
      weight[i] = e.weight;
    }
    for (std::size_t i = n; i < kChunk + 8; ++i) x[i] = y[i] = 0, ref[i] = weight[i] = 0;
    for (std::size_t a = 0; a < archs.size(); ++a) {
      if (!archs[a].available) continue;
      archs[a].eval[static_cast<int>(spec.fn)](x.data(), y.data(), n);
      const double m = chunk_max_error(y.data(), ref.data(), weight.data(), yd.data(), n);
      if (m <= stats[a].max_err) continue;
      for (std::size_t i = 0; i < n; ++i) {  // rare: locate the new maximum
        const double err = element_error(y[i], ref[i], weight[i]);
        if (err > stats[a].max_err) stats[a] = {err, x[i], y[i], ref[i]};
      }
    }
    total += n;
  };

  std::size_t fill = 0;
  for (const Segment& s : spec.segments) {
    for (std::uint64_t p = s.begin; p < s.end; p += s.stride) {
      x[fill++] = float_of(static_cast<std::uint32_t>(p));
      if (fill == kChunk) {
        process(fill);
        fill = 0;
      }
    }
  }
  if (fill) process(fill);

  std::printf("[ sweep    ] %s: %" PRIu64 " samples per arch, bound %.2f ulp\n", spec.name, total,
              spec.bound);
  for (std::size_t a = 0; a < archs.size(); ++a) {
    const Stats& s = stats[a];
    if (!archs[a].available) {
      std::printf("[ sweep    ]   %-12s skipped: the CPU lacks it\n", archs[a].name.c_str());
      continue;
    }
    std::printf("[ sweep    ]   %-12s max %.3f ulp at x = %.9g (0x%08x): got %.9g, exact %.17g\n",
                archs[a].name.c_str(), s.max_err, s.x_at, bits_of(s.x_at), s.y_at, s.ref_at);
    EXPECT_LE(s.max_err, spec.bound)
        << spec.name << " on " << archs[a].name << ": at x = " << s.x_at << " (bits 0x" << std::hex
        << bits_of(s.x_at) << std::dec << ") got " << s.y_at << ", expected "
        << (s.max_err >= 1e100 ? "exactly " : "") << s.ref_at;
  }
}

TEST(SimdMathHarness, ErrorMetric) {
  EXPECT_EQ(float_ulp(1.0), 0x1p-23);
  EXPECT_EQ(float_ulp(1.9999), 0x1p-23);
  EXPECT_EQ(float_ulp(0x1p-126), 0x1p-149);
  EXPECT_EQ(float_ulp(1e-40), 0x1p-149);
  EXPECT_EQ(float_ulp(-3.0e38), 0x1p104);
  // chunk_max_error: NaN outputs, wrong 0 / inf, and a plain 1-ulp difference.
  constexpr std::size_t n = 8;
  float y[n] = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  double ref[n], weight[n], yd[n];
  for (std::size_t i = 0; i < n; ++i) ref[i] = 1.0, weight[i] = 0x1p23;
  EXPECT_EQ(chunk_max_error(y, ref, weight, yd, n), 0.0);
  y[3] = std::nextafter(1.0f, 2.0f);
  EXPECT_EQ(chunk_max_error(y, ref, weight, yd, n), 1.0);
  y[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(chunk_max_error(y, ref, weight, yd, n), INFINITY);
  y[5] = 1.0f;
  y[6] = std::numeric_limits<float>::max();
  ref[6] = 0x1p128, weight[6] = kExact;  // must be +inf
  EXPECT_GT(chunk_max_error(y, ref, weight, yd, n), 1e100);
  y[6] = INFINITY;
  EXPECT_EQ(chunk_max_error(y, ref, weight, yd, n), 1.0);
  y[7] = 0x1p-149f;
  ref[7] = 0.0, weight[7] = kExact;  // must be 0
  EXPECT_GT(chunk_max_error(y, ref, weight, yd, n), 1e100);
  EXPECT_EQ(element_error(0x1p-149f, 0.0, kExact), 0x1p-149 * kExact);
  EXPECT_EQ(element_error(std::numeric_limits<float>::quiet_NaN(), 1.0, 1.0), INFINITY);
}

// Sample density. Sanitizer and unoptimized builds run the SIMD code ~50x slower and are there to
// catch memory errors and UB, not to re-measure accuracy: they take every kSparse-th sample of the
// sets below (the bounds are the same).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__OPTIMIZE__)
constexpr std::uint32_t kSparse = 16;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
constexpr std::uint32_t kSparse = 16;
#else
constexpr std::uint32_t kSparse = 1;
#endif
#else
constexpr std::uint32_t kSparse = 1;
#endif

// Max errors asserted below. exp / exp2 were also checked exhaustively (every float of the
// non-constant range; numbers in the header comment of simd/exp.hpp): max 0.89 / 0.88 ulp with FMA,
// 1.18 / 1.08 ulp without (xsimd's x*y+z not contracted); softplus (the polynomial log1p of
// simd/activations.hpp) exhaustively over [-110, 20.5]: 2.89 ulp with FMA, 3.01 without. Each sweep
// prints what it measured; on a Zen 5 (GCC 12): sigmoid 2.26, silu 2.41.
constexpr double kExpMaxUlp = 1.25;
constexpr double kExp2MaxUlp = 1.25;
constexpr double kSoftplusMaxUlp = 3.5;
constexpr double kSigmoidMaxUlp = 3.5;
constexpr double kSiluMaxUlp = 3.5;

// Every 61st float where e^x is not a constant ([-104, 89] without |x| < 2^-30), every 1021st over
// all finite floats (the constant results 0, 1 and +inf; huge, tiny and subnormal inputs), and every
// float of the subnormal-result range, of the overflow edge, around +-0 and around the points where
// the correctly rounded e^x leaves 1.
TEST(SimdMathSweep, Exp) {
  constexpr std::uint32_t k = kSparse;
  std::vector<Segment> s;
  add_whole_range(s, 1021 * k);
  add_interval(s, 0x1p-30f, 89.0f, 61 * k);
  add_interval(s, -104.0f, -0x1p-30f, 61 * k);
  add_interval(s, -104.0f, -87.0f, k);  // subnormal results (and the rounding to 0 below -103.97)
  add_interval(s, 88.0f, 89.0f, k);     // overflow at 88.7228
  add_window(s, 0.0f, 1 << 16, k);      // +-0 and subnormal inputs
  add_window(s, -0.0f, 1 << 16, k);
  for (float t : {0x1p-24f, 0x1p-25f, -0x1p-24f, -0x1p-25f}) add_window(s, t, 1 << 18, k);
  run_sweep({"exp", Fn::exp, &expect_exp, s, kExpMaxUlp});
}

// As exp, over 2^x's non-constant range [-151, 129].
TEST(SimdMathSweep, Exp2) {
  constexpr std::uint32_t k = kSparse;
  std::vector<Segment> s;
  add_whole_range(s, 1021 * k);
  add_interval(s, 0x1p-30f, 129.0f, 61 * k);
  add_interval(s, -151.0f, -0x1p-30f, 61 * k);
  add_interval(s, -151.0f, -126.0f, k);  // subnormal results
  add_interval(s, 127.0f, 129.0f, k);    // overflow at 128
  add_window(s, 0.0f, 1 << 16, k);
  add_window(s, -0.0f, 1 << 16, k);
  for (float t : {0x1p-24f, 0x1p-25f, -0x1p-24f, -0x1p-25f})
    add_window(s, t * static_cast<float>(1.0 / kLn2), 1 << 18, k);
  run_sweep({"exp2", Fn::exp2, &expect_exp2, s, kExp2MaxUlp});
}

// Every 251st float with |x| in [2^-30, 128], every 4093rd over all finite floats, and every float
// around the softplus threshold 20 and where e^-x overflows (sigmoid(x) becomes subnormal).
std::vector<Segment> activation_segments() {
  constexpr std::uint32_t k = kSparse;
  std::vector<Segment> s;
  add_whole_range(s, 4093 * k);
  add_interval(s, 0x1p-30f, 128.0f, 251 * k);
  add_interval(s, -128.0f, -0x1p-30f, 251 * k);
  add_interval(s, 19.9f, 20.1f, k);
  add_interval(s, -89.5f, -86.5f, k);
  add_window(s, 0.0f, 1 << 14, k);
  add_window(s, -0.0f, 1 << 14, k);
  return s;
}

TEST(SimdMathSweep, Softplus) {
  run_sweep({"softplus", Fn::softplus, &expect_softplus, activation_segments(), kSoftplusMaxUlp});
}
TEST(SimdMathSweep, Sigmoid) {
  run_sweep({"sigmoid", Fn::sigmoid, &expect_sigmoid, activation_segments(), kSigmoidMaxUlp});
}
TEST(SimdMathSweep, Silu) {
  run_sweep({"silu", Fn::silu, &expect_silu, activation_segments(), kSiluMaxUlp});
}

TEST(SimdMathSweep, AtLeastOneArchRuns) {
  int n = 0;
  for (const auto& a : compiled_archs()) n += a.available;
  EXPECT_GE(n, 1) << "no compiled xsimd arch is available on this CPU";
  // The default arch (what kernels use) must be among the tested ones.
  bool found = false;
  for (const auto& a : compiled_archs()) found |= a.name == simd::default_arch::name();
  EXPECT_TRUE(found) << simd::default_arch::name();
}

// ---- per-arch typed tests -----------------------------------------------------------------------

template <class Arch>
class SimdMathTyped : public ::testing::Test {
 protected:
  using V = simd::vfloat<Arch>;
  static constexpr std::size_t W = simd::lanes<Arch>;

  void SetUp() override {
    TOKENMIX_SKIP_IF_UNAVAILABLE(Arch);
  }

  // f applied to every lane holding x (all lanes must agree).
  template <Fn F>
  static float at(float x) {
    alignas(64) float in[W], out[W];
    for (auto& v : in) v = x;
    simd::store<Arch>(out, apply<Arch, F>(simd::load<Arch>(in)));
    for (std::size_t i = 1; i < W; ++i)
      EXPECT_EQ(bits_of(out[i]), bits_of(out[0])) << "lane " << i << " differs for x = " << x;
    return out[0];
  }
};

TYPED_TEST_SUITE(SimdMathTyped, tokenmix::testing::AllCompiledArchs, tokenmix::testing::ArchNames);

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

TYPED_TEST(SimdMathTyped, ExpSpecialValues) {
  using T = TestFixture;
  EXPECT_TRUE(std::isnan(T::template at<Fn::exp>(kNaN)));
  EXPECT_TRUE(std::isnan(T::template at<Fn::exp>(-kNaN)));
  EXPECT_EQ(T::template at<Fn::exp>(-kInf), 0.0f);
  EXPECT_EQ(T::template at<Fn::exp>(kInf), kInf);
  EXPECT_EQ(T::template at<Fn::exp>(0.0f), 1.0f);
  EXPECT_EQ(T::template at<Fn::exp>(-0.0f), 1.0f);
  EXPECT_EQ(T::template at<Fn::exp>(89.0f), kInf);
  EXPECT_EQ(T::template at<Fn::exp>(std::numeric_limits<float>::max()), kInf);
  EXPECT_EQ(T::template at<Fn::exp>(-104.0f), 0.0f);
  EXPECT_EQ(T::template at<Fn::exp>(-std::numeric_limits<float>::max()), 0.0f);
  EXPECT_NEAR(T::template at<Fn::exp>(1.0f), 2.7182817f, 2.4e-7f);
  EXPECT_GT(T::template at<Fn::exp>(-100.0f), 0.0f);  // subnormal, not flushed
}

TYPED_TEST(SimdMathTyped, Exp2SpecialValuesAndExactPowers) {
  using T = TestFixture;
  EXPECT_TRUE(std::isnan(T::template at<Fn::exp2>(kNaN)));
  EXPECT_EQ(T::template at<Fn::exp2>(-kInf), 0.0f);
  EXPECT_EQ(T::template at<Fn::exp2>(kInf), kInf);
  EXPECT_EQ(T::template at<Fn::exp2>(0.0f), 1.0f);
  EXPECT_EQ(T::template at<Fn::exp2>(-0.0f), 1.0f);
  EXPECT_EQ(T::template at<Fn::exp2>(128.0f), kInf);
  EXPECT_EQ(T::template at<Fn::exp2>(-150.0f), 0.0f);  // 2^-150 ties to even: 0
  for (int k = -149; k <= 127; ++k)
    EXPECT_EQ(T::template at<Fn::exp2>(static_cast<float>(k)), std::ldexp(1.0f, k)) << "k = " << k;
}

// exp2_nonpositive (the softmaxes' exp2 without the upper clamp) is exp2, bit for bit, at every x <= 129:
// every 127th float bit pattern of [-200, -0] (results 0 below -150, subnormal from -126) and of
// [0, 129] (+inf from 128), -inf and NaN.
TYPED_TEST(SimdMathTyped, Exp2NonpositiveIsExp2) {
  using V = typename TestFixture::V;
  constexpr std::size_t W = TestFixture::W;
  std::vector<float> xs = {-kInf, kNaN, -0.0f, 0.0f, 129.0f, -std::numeric_limits<float>::max()};
  for (std::uint32_t u = bits_of(-0.0f); u <= bits_of(-200.0f); u += 127) xs.push_back(float_of(u));
  for (std::uint32_t u = bits_of(0.0f); u <= bits_of(129.0f); u += 127) xs.push_back(float_of(u));
  alignas(64) float in[W], got[W], want[W];
  for (std::size_t i = 0; i < xs.size(); i += W) {
    for (std::size_t l = 0; l < W; ++l) in[l] = xs[std::min(i + l, xs.size() - 1)];
    simd::store<TypeParam>(got, simd::exp2_nonpositive<TypeParam>(simd::load<TypeParam>(in)));
    simd::store<TypeParam>(want, simd::exp2<TypeParam>(V(simd::load<TypeParam>(in))));
    for (std::size_t l = 0; l < W; ++l) ASSERT_EQ(bits_of(got[l]), bits_of(want[l])) << "x = " << in[l];
  }
}

// exp2_finite_nonpositive is exp2_nonpositive, bit for bit, at every finite x <= 129, down to the
// most negative float (where AVX-512 has no clamp).
TYPED_TEST(SimdMathTyped, Exp2FiniteNonpositiveIsExp2Nonpositive) {
  constexpr std::size_t W = TestFixture::W;
  std::vector<float> xs = {-0.0f, 0.0f, 129.0f, -152.0f, -786432.0f, -std::numeric_limits<float>::max()};
  for (std::uint32_t u = bits_of(-0.0f); u <= bits_of(-std::numeric_limits<float>::max()); u += 4099) xs.push_back(float_of(u));
  for (std::uint32_t u = bits_of(0.0f); u <= bits_of(129.0f); u += 127) xs.push_back(float_of(u));
  alignas(64) float in[W], got[W], want[W];
  for (std::size_t i = 0; i < xs.size(); i += W) {
    for (std::size_t l = 0; l < W; ++l) in[l] = xs[std::min(i + l, xs.size() - 1)];
    simd::store<TypeParam>(got, simd::exp2_finite_nonpositive<TypeParam>(simd::load<TypeParam>(in)));
    simd::store<TypeParam>(want, simd::exp2_nonpositive<TypeParam>(simd::load<TypeParam>(in)));
    for (std::size_t l = 0; l < W; ++l) ASSERT_EQ(bits_of(got[l]), bits_of(want[l])) << "x = " << in[l];
  }
}

TYPED_TEST(SimdMathTyped, MixedSpecialValuesInOneBatch) {
  using T = TestFixture;
  constexpr std::size_t W = T::W;
  const float pool[] = {kNaN, -kInf, kInf, 0.0f, -100.0f, 88.8f, 1.0f, -1.0f};
  alignas(64) float in[W], out[W];
  for (std::size_t i = 0; i < W; ++i) in[i] = pool[i % 8];
  simd::store<TypeParam>(out, simd::exp<TypeParam>(simd::load<TypeParam>(in)));
  for (std::size_t i = 0; i < W; ++i) {
    const float expected = std::exp(in[i]);
    if (std::isnan(expected)) EXPECT_TRUE(std::isnan(out[i])) << "lane " << i;
    else if (std::isinf(expected) || expected == 0.0f) EXPECT_EQ(out[i], expected) << "lane " << i;
    else EXPECT_NEAR(out[i], expected, std::fabs(expected) * 2.4e-7f) << "lane " << i;
  }
}

TYPED_TEST(SimdMathTyped, ActivationSpecialValues) {
  using T = TestFixture;
  // softplus: x above 20 returned bit for bit; log1p(exp(x)) at and below.
  for (float x : {20.000002f, 21.0f, 1e4f, 1e30f, std::numeric_limits<float>::max(), kInf})
    EXPECT_EQ(bits_of(T::template at<Fn::softplus>(x)), bits_of(x)) << "x = " << x;
  EXPECT_FLOAT_EQ(T::template at<Fn::softplus>(20.0f), static_cast<float>(std::log1p(std::exp(20.0))));
  EXPECT_EQ(T::template at<Fn::softplus>(-kInf), 0.0f);
  EXPECT_TRUE(std::isnan(T::template at<Fn::softplus>(kNaN)));
  EXPECT_FLOAT_EQ(T::template at<Fn::softplus>(0.0f), static_cast<float>(kLn2));
  // sigmoid
  EXPECT_EQ(T::template at<Fn::sigmoid>(0.0f), 0.5f);
  EXPECT_EQ(T::template at<Fn::sigmoid>(kInf), 1.0f);
  EXPECT_EQ(T::template at<Fn::sigmoid>(-kInf), 0.0f);
  EXPECT_EQ(T::template at<Fn::sigmoid>(100.0f), 1.0f);
  EXPECT_TRUE(std::isnan(T::template at<Fn::sigmoid>(kNaN)));
  // silu
  EXPECT_EQ(T::template at<Fn::silu>(0.0f), 0.0f);
  EXPECT_EQ(T::template at<Fn::silu>(kInf), kInf);
  EXPECT_EQ(T::template at<Fn::silu>(100.0f), 100.0f);
  EXPECT_TRUE(std::isnan(T::template at<Fn::silu>(kNaN)));
}

TYPED_TEST(SimdMathTyped, FmaddRounding) {
  using V = typename TestFixture::V;
  // a*b = 1 + 2^-11 + 2^-24 exactly; c cancels the leading part. One rounding keeps 2^-24, two
  // roundings lose it (the product rounds to 1 + 2^-11, ties to even).
  const float a = 1.0f + 0x1p-12f;
  const float c = -(1.0f + 0x1p-11f);
  const float fused = 0x1p-24f;
  const float fm = simd::fmadd<TypeParam>(V(a), V(a), V(c)).get(0);
  const float fnm = simd::fnmadd<TypeParam>(V(a), V(a), V(-c)).get(0);
  if (has_fused_fmadd<TypeParam>) {
    EXPECT_EQ(fm, fused);
    EXPECT_EQ(fnm, -fused);
  } else {  // the compiler may contract x*y+z or not
    EXPECT_TRUE(fm == fused || fm == 0.0f) << fm;
    EXPECT_TRUE(fnm == -fused || fnm == 0.0f) << fnm;
  }
  // Random operands: equal to std::fma, or (non-FMA archs) to the twice-rounded value.
  std::uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) * 0x1p-24f * 4.0f - 2.0f;
  };
  for (int it = 0; it < 1000; ++it) {
    const float x = next(), y = next(), z = next();
    const float got = simd::fmadd<TypeParam>(V(x), V(y), V(z)).get(0);
    const float one = std::fma(x, y, z);
    const float product = static_cast<float>(static_cast<double>(x) * y);  // exact, then rounded
    const float two = product + z;
    if (has_fused_fmadd<TypeParam>) ASSERT_EQ(got, one) << x << " * " << y << " + " << z;
    else ASSERT_TRUE(got == one || got == two) << x << " * " << y << " + " << z;
  }
}

// fmadd_to (acc += a·b in acc's register) is fmadd, lane by lane and bitwise, the sum also landing in
// acc when acc aliases an operand.
TYPED_TEST(SimdMathTyped, FmaddToIsFmadd) {
  using V = typename TestFixture::V;
  constexpr std::size_t W = TestFixture::W;
  std::uint32_t state = 777;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) * 0x1p-24f * 8.0f - 4.0f;
  };
  alignas(64) float a[W], b[W], c[W], got[W], want[W];
  for (int it = 0; it < 200; ++it) {
    for (std::size_t i = 0; i < W; ++i) a[i] = next(), b[i] = next(), c[i] = next();
    const V va = simd::load<TypeParam>(a), vb = simd::load<TypeParam>(b);
    V acc = simd::load<TypeParam>(c);
    simd::fmadd_to<TypeParam>(acc, va, vb);
    simd::store<TypeParam>(got, acc);
    simd::store<TypeParam>(want, simd::fmadd<TypeParam>(va, vb, simd::load<TypeParam>(c)));
    for (std::size_t i = 0; i < W; ++i) ASSERT_EQ(got[i], want[i]) << a[i] << " * " << b[i] << " + " << c[i];
    V self = va;  // acc as a multiplicand too
    simd::fmadd_to<TypeParam>(self, self, vb);
    simd::store<TypeParam>(got, self);
    simd::store<TypeParam>(want, simd::fmadd<TypeParam>(va, vb, va));
    for (std::size_t i = 0; i < W; ++i) ASSERT_EQ(got[i], want[i]);
  }
}

TYPED_TEST(SimdMathTyped, ReduceAdd) {
  using T = TestFixture;
  constexpr std::size_t W = T::W;
  alignas(64) float in[W];
  for (std::size_t i = 0; i < W; ++i) in[i] = static_cast<float>(i + 1);
  EXPECT_EQ(simd::reduce_add<TypeParam>(simd::load<TypeParam>(in)), static_cast<float>(W * (W + 1) / 2));
  double sum = 0;
  for (std::size_t i = 0; i < W; ++i) {
    in[i] = std::sin(static_cast<float>(i) * 1.7f) * 1000.0f;
    sum += in[i];
  }
  EXPECT_NEAR(simd::reduce_add<TypeParam>(simd::load<TypeParam>(in)), sum, 1e-3);
  for (std::size_t i = 0; i < W; ++i) in[i] = 0.0f;
  in[W - 1] = kInf;
  EXPECT_EQ(simd::reduce_add<TypeParam>(simd::load<TypeParam>(in)), kInf);
}

// select_by_bits: lane l from a where bit l is set, from b elsewhere; bits past the lanes ignored.
TYPED_TEST(SimdMathTyped, SelectByBits) {
  using T = TestFixture;
  constexpr std::size_t W = T::W;
  alignas(64) float a[W], b[W], out[W], pad[2 * W];
  for (std::size_t i = 0; i < W; ++i) a[i] = float(i + 1), b[i] = -float(i + 1);
  for (const std::uint32_t bits : {0u, 1u, 0x5555u, 0xAAAAu, 0xFFFFFFFFu, 0x8001u, 0x12345u}) {
    simd::store<TypeParam>(out, simd::select_by_bits<TypeParam>(bits, simd::load<TypeParam>(a), simd::load<TypeParam>(b), pad));
    for (std::size_t i = 0; i < W; ++i) EXPECT_EQ(out[i], ((bits >> i) & 1u) ? a[i] : b[i]) << "bits " << bits << " lane " << i;
  }
}

// lane_sums: lane r of the result is the sum of the lanes of vector r; reduce_max: the largest lane.
TYPED_TEST(SimdMathTyped, LaneSumsAndReduceMax) {
  using T = TestFixture;
  using V = simd::vfloat<TypeParam>;
  constexpr std::size_t W = T::W;
  alignas(64) float x[W * W], out[W];
  V v[W];
  for (std::size_t r = 0; r < W; ++r) {
    for (std::size_t l = 0; l < W; ++l) x[r * W + l] = float((r + 1) * 100 + l) * ((l % 3 == 0) ? -1.0f : 1.0f);
    v[r] = simd::load<TypeParam>(x + r * W);
  }
  simd::store<TypeParam>(out, simd::lane_sums<TypeParam>(v));
  for (std::size_t r = 0; r < W; ++r) {
    float want = 0.0f;
    for (std::size_t l = 0; l < W; ++l) want += x[r * W + l];
    EXPECT_EQ(out[r], want) << "vector " << r;  // small integers: exact in any order
    float mx = x[r * W];
    for (std::size_t l = 1; l < W; ++l) mx = std::max(mx, x[r * W + l]);
    EXPECT_EQ(simd::reduce_max<TypeParam>(v[r]), mx) << "vector " << r;
  }
  x[0] = -kInf;  // lane 0 of vector 0 (-100) was not its largest: -inf lanes change nothing
  EXPECT_EQ(simd::reduce_max<TypeParam>(simd::load<TypeParam>(x)), simd::reduce_max<TypeParam>(v[0]));
}

// transpose_square: row i of the W x W source becomes column i; only `rows` rows are written.
TYPED_TEST(SimdMathTyped, TransposeSquare) {
  using T = TestFixture;
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(T::W);
  std::vector<float> src(W * W), dst(W * (W + 3), -1.0f);
  for (std::ptrdiff_t i = 0; i < W * W; ++i) src[std::size_t(i)] = float(i);
  for (const std::ptrdiff_t rows : {W, W - 1, std::ptrdiff_t(1)}) {
    std::fill(dst.begin(), dst.end(), -1.0f);
    simd::transpose_square<TypeParam>(src.data(), W, dst.data(), W + 3, rows);
    for (std::ptrdiff_t r = 0; r < W; ++r)
      for (std::ptrdiff_t c = 0; c < W + 3; ++c) {
        const float want = r < rows && c < W ? src[std::size_t(c * W + r)] : -1.0f;
        EXPECT_EQ(dst[std::size_t(r * (W + 3) + c)], want) << "rows " << rows << " at " << r << ", " << c;
      }
  }
}

// transpose_block: any rows x cols block (whole squares, edges, both) becomes its transpose; nothing
// outside it is written.
TYPED_TEST(SimdMathTyped, TransposeBlock) {
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(TestFixture::W);
  for (const auto& [rows, cols] : std::vector<std::pair<std::ptrdiff_t, std::ptrdiff_t>>{
           {W, W}, {2 * W, 3 * W}, {2 * W + 3, W + 1}, {5, 7}, {1, 2 * W}, {3 * W - 1, 1}}) {
    const std::ptrdiff_t src_stride = cols + 2, dst_stride = rows + 5;
    std::vector<float> src(std::size_t(rows * src_stride)), dst(std::size_t(cols * dst_stride), -1.0f);
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = float(i);
    simd::transpose_block<TypeParam>(src.data(), src_stride, rows, cols, dst.data(), dst_stride);
    for (std::ptrdiff_t c = 0; c < cols; ++c)
      for (std::ptrdiff_t r = 0; r < dst_stride; ++r) {
        const float want = r < rows ? src[std::size_t(r * src_stride + c)] : -1.0f;
        EXPECT_EQ(dst[std::size_t(c * dst_stride + r)], want) << rows << "x" << cols << " at " << c << ", " << r;
      }
  }
}

// softmax_inplace against a double softmax (lengths around the vector width, a -inf slot, large
// logits that would overflow without the max subtraction); gelu_inplace against x·(1 + erf(x/√2))/2.
// store_stream (non-temporal where the arch has it) writes exactly what store does, at a
// vector-aligned address, and nothing past the vector; stream_fence orders it before the reads.
TYPED_TEST(SimdMathTyped, StreamStoreWritesTheVector) {
  constexpr std::size_t W = TestFixture::W;
  alignas(64) float in[W], out[2 * W];
  for (std::size_t i = 0; i < W; ++i) in[i] = 0.5f * float(i) - 3.0f;
  std::fill(std::begin(out), std::end(out), 123.0f);
  simd::store_stream<TypeParam>(out + W, simd::load<TypeParam>(in));
  simd::stream_fence();
  for (std::size_t i = 0; i < W; ++i) {
    EXPECT_EQ(bits_of(out[W + i]), bits_of(in[i])) << "lane " << i;
    EXPECT_EQ(out[i], 123.0f) << "wrote before the vector, float " << i;
  }
}

TYPED_TEST(SimdMathTyped, SoftmaxAndGeluRows) {
  constexpr std::ptrdiff_t W = static_cast<std::ptrdiff_t>(TestFixture::W);
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (const std::ptrdiff_t n : {std::ptrdiff_t(1), std::ptrdiff_t(5), W, W + 3, std::ptrdiff_t(121)}) {
    std::vector<float> x(std::size_t(n) + 1, 123.0f);  // x[n]: a sentinel that must stay untouched
    for (std::ptrdiff_t i = 0; i < n; ++i) x[std::size_t(i)] = normal(rng) + (i == n / 2 ? 90.0f : 0.0f);
    if (n > 2) x[1] = -kInf;
    double mx = -1e300, sum = 0;
    for (std::ptrdiff_t i = 0; i < n; ++i) mx = std::max(mx, double(x[std::size_t(i)]));
    for (std::ptrdiff_t i = 0; i < n; ++i) sum += std::exp(double(x[std::size_t(i)]) - mx);
    std::vector<float> y = x;
    simd::softmax_inplace<TypeParam>(y.data(), n);
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const double want = std::exp(double(x[std::size_t(i)]) - mx) / sum;
      EXPECT_NEAR(y[std::size_t(i)], want, 1e-6 * want + 1e-12) << "n " << n << " slot " << i;
    }
    EXPECT_EQ(y[std::size_t(n)], 123.0f) << "softmax wrote past n = " << n;
    std::vector<float> g = x;
    simd::gelu_inplace<TypeParam>(g.data(), n);
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const double v = x[std::size_t(i)];
      if (v == -kInf) continue;  // -inf·0: NaN, as in PyTorch
      const double want = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      EXPECT_NEAR(g[std::size_t(i)], want, 2e-6 * std::abs(want) + 1e-7) << "gelu(" << v << ")";
    }
    EXPECT_EQ(g[std::size_t(n)], 123.0f) << "gelu wrote past n = " << n;
  }
}

}  // namespace
