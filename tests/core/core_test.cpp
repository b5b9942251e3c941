// Tests of core/ and config.hpp: TOKENMIX_CHECK and tokenmix::Error, shape printing and checks,
// parallel_for coverage, tensor aliases and views, the cache size query (DESIGN §2, §4, §5).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/cache.hpp"
#include "tokenmix/core/random.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"

namespace {

using tokenmix::Index;
using tokenmix::NamedShape;
using tokenmix::Shape;

template <class T>
std::string to_string(const T& value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// The message of the tokenmix::Error thrown by f (fails the test if none is thrown).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const tokenmix::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected tokenmix::Error";
  return {};
}

// ---- TOKENMIX_CHECK / tokenmix::Error -----------------------------------------------------------

static_assert(std::is_base_of_v<std::invalid_argument, tokenmix::Error>,
              "tokenmix::Error must be a std::invalid_argument");

TEST(Check, ThrowsErrorWithConcatenatedMessage) {
  const int d = 96;
  try {
    TOKENMIX_CHECK(d == 128, "selective_scan: D is ", d, ", expected ", 128);
    FAIL() << "TOKENMIX_CHECK did not throw";
  } catch (const tokenmix::Error& e) {
    EXPECT_STREQ(e.what(), "selective_scan: D is 96, expected 128");
  }
}

TEST(Check, ErrorIsAnInvalidArgument) {
  EXPECT_THROW(TOKENMIX_CHECK(false, "op: bad"), std::invalid_argument);
  EXPECT_THROW(TOKENMIX_CHECK(1 + 1 == 3, "op: bad"), tokenmix::Error);
  try {
    TOKENMIX_CHECK(false, "op: x must be positive, got ", -1.5);
  } catch (const std::invalid_argument& e) {  // generic handlers see the message too
    EXPECT_STREQ(e.what(), "op: x must be positive, got -1.5");
  }
}

TEST(Check, PassingCheckDoesNotThrowNorFormat) {
  int formatted = 0;
  auto part = [&] {
    ++formatted;
    return "part";
  };
  EXPECT_NO_THROW(TOKENMIX_CHECK(true, "never ", part()));
  EXPECT_EQ(formatted, 0) << "the message must only be built on failure";
  EXPECT_THROW(TOKENMIX_CHECK(false, "now ", part()), tokenmix::Error);
  EXPECT_EQ(formatted, 1);
}

TEST(Check, IsOneStatement) {
  // Usable as the body of an unbraced if / else.
  bool threw = false;
  try {
    if (true)
      TOKENMIX_CHECK(false, "x");
    else
      threw = false;
  } catch (const tokenmix::Error&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

// ---- Shape / NamedShape -------------------------------------------------------------------------

TEST(Shape, Prints) {
  EXPECT_EQ(to_string(Shape<3>{{2, 64, 96}}), "[2, 64, 96]");
  EXPECT_EQ(to_string(Shape<1>{{7}}), "[7]");
  EXPECT_EQ(to_string(Shape<0>{}), "[]");
  EXPECT_EQ(to_string(Shape<2>{{0, -3}}), "[0, -3]");
}

TEST(Shape, NumelIndexAndEquality) {
  const Shape<3> s{{2, 64, 96}};
  EXPECT_EQ(s.numel(), 2 * 64 * 96);
  EXPECT_EQ(s[0], 2);
  EXPECT_EQ(s[2], 96);
  EXPECT_EQ(Shape<0>{}.numel(), 1);
  EXPECT_EQ((Shape<2>{{5, 0}}.numel()), 0);
  EXPECT_TRUE(s == (Shape<3>{{2, 64, 96}}));
  EXPECT_TRUE(s != (Shape<3>{{2, 96, 64}}));
}

TEST(Shape, NamedShapePrints) {
  EXPECT_EQ(to_string(NamedShape<2>{{"B", "L"}, {{2, 64}}}), "[B=2, L=64]");
  EXPECT_EQ(to_string(NamedShape<3>{{"B", "L", "D"}, {{2, 64, 128}}}), "[B=2, L=64, D=128]");
}

TEST(Shape, ShapeOfTensorsAndViews) {
  tokenmix::Tensor<float, 3> t(2, 5, 7);
  EXPECT_EQ(tokenmix::shape_of(t), (Shape<3>{{2, 5, 7}}));
  std::vector<float> buffer(3 * 4);
  tokenmix::TensorView<float, 2> v(buffer.data(), 3, 4);
  EXPECT_EQ(to_string(tokenmix::shape_of(v)), "[3, 4]");
}

// ---- detail::check_shape / check_numel_fits / check_finite ---------------------------------------

TEST(CheckShape, AcceptsTheExpectedShape) {
  tokenmix::Tensor<float, 3> u(2, 64, 128);
  EXPECT_NO_THROW(tokenmix::detail::check_shape("selective_scan", "u", u,
                                                NamedShape<3>{{"B", "L", "D"}, {{2, 64, 128}}}));
}

TEST(CheckShape, MessageNamesOpArgActualAndExpected) {
  tokenmix::Tensor<float, 3> delta(2, 64, 96);
  const std::string msg = error_message([&] {
    tokenmix::detail::check_shape("selective_scan", "delta", delta,
                                  NamedShape<3>{{"B", "L", "D"}, {{2, 64, 128}}}, " like u");
  });
  EXPECT_EQ(msg, "selective_scan: delta has shape [2, 64, 96], expected [B=2, L=64, D=128] like u");
}

TEST(CheckShape, WorksOnViews) {
  std::vector<float> buffer(4 * 16);
  tokenmix::ConstTensorView<float, 2> A(buffer.data(), 4, 16);
  const std::string msg = error_message([&] {
    tokenmix::detail::check_shape("selective_scan", "A", A, NamedShape<2>{{"D", "N"}, {{4, 8}}});
  });
  EXPECT_EQ(msg, "selective_scan: A has shape [4, 16], expected [D=4, N=8]");
}

TEST(CheckNumelFits, AcceptsRealisticAndEmptyShapes) {
  using tokenmix::detail::check_numel_fits;
  EXPECT_NO_THROW(check_numel_fits("op", "x", Shape<3>{{8, 4096, 5120}}));
  EXPECT_NO_THROW(check_numel_fits("op", "x", Shape<2>{{Index{1} << 29, Index{1} << 30}}));
  EXPECT_NO_THROW(check_numel_fits("op", "x", Shape<3>{{0, 64, 96}}));
  EXPECT_NO_THROW(check_numel_fits("op", "x", Shape<0>{}));
}

TEST(CheckNumelFits, RejectsOverflow) {
  using tokenmix::detail::check_numel_fits;
  const Index big = Index{1} << 32;
  const std::string msg =
      error_message([&] { check_numel_fits("selective_scan", "u", Shape<2>{{big, big}}); });
  EXPECT_NE(msg.find("selective_scan: u"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4294967296, 4294967296]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more elements than fit"), std::string::npos) << msg;
  // The byte count (8 bytes an element at most) must fit in Index too: 2^60 elements do not.
  EXPECT_THROW(check_numel_fits("op", "x", Shape<2>{{Index{1} << 30, Index{1} << 30}}),
               tokenmix::Error);
  const Index max = std::numeric_limits<Index>::max();
  EXPECT_THROW(check_numel_fits("op", "x", Shape<3>{{3, max / 2, 2}}), tokenmix::Error);
  EXPECT_THROW(check_numel_fits("op", "x", Shape<1>{{max}}), tokenmix::Error);
}

TEST(CheckNumelFits, RejectsNegativeExtents) {
  using tokenmix::detail::check_numel_fits;
  const std::string msg =
      error_message([&] { check_numel_fits("causal_conv1d", "x", Shape<3>{{2, -1, 4}}); });
  EXPECT_EQ(msg, "causal_conv1d: x has a negative extent in shape [2, -1, 4]");
  EXPECT_THROW(check_numel_fits("op", "x", Shape<2>{{0, -5}}), tokenmix::Error);
}

TEST(CheckFinite, RejectsNanAndInf) {
  using tokenmix::detail::check_finite;
  EXPECT_NO_THROW(check_finite("linear_attention", "scale", 0.125));
  EXPECT_NO_THROW(check_finite("linear_attention", "scale", -1e300));
  const std::string msg = error_message(
      [] { check_finite("linear_attention", "scale", std::numeric_limits<double>::quiet_NaN()); });
  EXPECT_EQ(msg.rfind("linear_attention: scale must be finite, got ", 0), 0u) << msg;
  EXPECT_THROW(check_finite("op", "x", std::numeric_limits<double>::infinity()), tokenmix::Error);
  EXPECT_THROW(check_finite("op", "x", -std::numeric_limits<double>::infinity()), tokenmix::Error);
}

// ---- ThreadPool / detail::parallel_for ----------------------------------------------------------

struct RangeCall {
  Index begin, end;
  std::thread::id thread;
};

// Runs parallel_for and returns the ranges it called body with, after checking that they cover
// [0, n) exactly once.
std::vector<RangeCall> run_parallel_for(const Eigen::ThreadPoolDevice* device, Index n) {
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  for (auto& h : hits) h = 0;
  std::mutex mutex;
  std::vector<RangeCall> calls;
  tokenmix::detail::parallel_for(device, n, [&](Index begin, Index end) {
    for (Index i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)]++;
    std::lock_guard<std::mutex> lock(mutex);
    calls.push_back({begin, end, std::this_thread::get_id()});
  });
  for (Index i = 0; i < n; ++i)
    EXPECT_EQ(hits[static_cast<std::size_t>(i)].load(), 1) << "index " << i << " of " << n;
  std::sort(calls.begin(), calls.end(), [](const RangeCall& a, const RangeCall& b) { return a.begin < b.begin; });
  Index next = 0;
  for (const RangeCall& c : calls) {
    EXPECT_EQ(c.begin, next) << "ranges must be contiguous";
    EXPECT_LT(c.begin, c.end) << "no empty ranges";
    next = c.end;
  }
  if (n > 0) {
    EXPECT_EQ(next, n);
  }
  return calls;
}

TEST(ParallelFor, CoversEveryIndexOnceForAnyThreadCount) {
  // 5, 8 and 16 threads: ranges handed on by workers, several levels deep.
  for (int threads : {1, 2, 3, 5, 8, 16}) {
    tokenmix::ThreadPool pool(threads);
    ASSERT_EQ(pool.num_threads(), threads);
    for (Index n : {0, 1, 2, 3, 7, 100}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + " n=" + std::to_string(n));
      const auto calls = run_parallel_for(pool.device(), n);
      EXPECT_EQ(static_cast<Index>(calls.size()), std::min<Index>(threads, n))
          << "one range per thread, never more ranges than items";
      if (n > 0) {
        // The caller's thread takes the first range; ranges are (nearly) equal.
        EXPECT_EQ(calls.front().thread, std::this_thread::get_id());
        Index shortest = n, longest = 0;
        for (const auto& c : calls) {
          shortest = std::min(shortest, c.end - c.begin);
          longest = std::max(longest, c.end - c.begin);
        }
        EXPECT_LE(longest - shortest, 1);
      }
    }
  }
}

TEST(ParallelFor, NullDeviceRunsInlineAsOneRange) {
  for (Index n : {0, 1, 7, 100}) {
    const auto calls = run_parallel_for(nullptr, n);
    if (n == 0) {
      EXPECT_TRUE(calls.empty());
      continue;
    }
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].begin, 0);
    EXPECT_EQ(calls[0].end, n);
    EXPECT_EQ(calls[0].thread, std::this_thread::get_id());
  }
}

TEST(ParallelFor, NegativeCountDoesNothing) {
  int calls = 0;
  tokenmix::ThreadPool pool(2);
  tokenmix::detail::parallel_for(pool.device(), -3, [&](Index, Index) { ++calls; });
  tokenmix::detail::parallel_for(nullptr, -3, [&](Index, Index) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, ResultsAreIndependentOfThreadCount) {
  // Per-item work written to per-item slots gives bitwise identical outputs for any thread count.
  auto run = [](const Eigen::ThreadPoolDevice* device) {
    std::vector<float> out(1000);
    tokenmix::detail::parallel_for(device, static_cast<Index>(out.size()), [&](Index b, Index e) {
      for (Index i = b; i < e; ++i) {
        float acc = 0;
        for (int k = 1; k <= 50; ++k) acc += std::sin(static_cast<float>(i * k)) / static_cast<float>(k);
        out[static_cast<std::size_t>(i)] = acc;
      }
    });
    return out;
  };
  const auto serial = run(nullptr);
  for (int threads : {1, 2, 3}) {
    tokenmix::ThreadPool pool(threads);
    EXPECT_EQ(run(pool.device()), serial) << threads << " threads";
  }
}

TEST(ThreadPool, AtLeastOneThread) {
  tokenmix::ThreadPool zero(0);
  EXPECT_EQ(zero.num_threads(), 1);
  tokenmix::ThreadPool negative(-4);
  EXPECT_EQ(negative.num_threads(), 1);
  ASSERT_NE(zero.device(), nullptr);
}

// A range whose ranges outlast the caller's spin (kSpinWaitMicroseconds) takes the blocking path.
TEST(ParallelFor, WaitsForSlowRangesPastTheSpin) {
  tokenmix::ThreadPool pool(2);
  std::atomic<int> done{0};
  tokenmix::detail::parallel_for(pool.device(), 2, [&](tokenmix::Index first, tokenmix::Index) {
    if (first == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    done.fetch_add(1);
  });
  EXPECT_EQ(done.load(), 2);
}

// ---- cache sizes ---------------------------------------------------------------------------------

// A cache size kernels size their working sets to: within [lo, hi] and read once (the same value on
// every call and thread).
void expect_plausible_and_stable(std::size_t (*cache_bytes)(), std::size_t lo, std::size_t hi) {
  const std::size_t bytes = cache_bytes();
  EXPECT_GE(bytes, lo);
  EXPECT_LE(bytes, hi);
  std::size_t other = 0;
  std::thread([&] { other = cache_bytes(); }).join();
  EXPECT_EQ(other, bytes);
  EXPECT_EQ(cache_bytes(), bytes);
}

// The per-core L2: 64 KiB .. 64 MiB.
TEST(CacheSize, L2IsPlausibleAndStable) {
  expect_plausible_and_stable(tokenmix::l2_cache_bytes, std::size_t(64) << 10, std::size_t(64) << 20);
}

// The L3 the core shares (sysfs, not glibc's sum over the package): 1 MiB .. 1 GiB.
TEST(CacheSize, L3IsPlausibleAndStable) {
  expect_plausible_and_stable(tokenmix::l3_cache_bytes, std::size_t(1) << 20, std::size_t(1) << 30);
}

// ---- seeded random weights ----------------------------------------------------------------------

TEST(SplitMix64, IsDeterministicAndInRange) {
  tokenmix::SplitMix64 a(7), b(7), c(8);
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(a.next(), c.next());
  // The first output of seed 0 is the published SplitMix64 reference value.
  EXPECT_EQ(tokenmix::SplitMix64(0).next(), 0xE220A8397B1DCDAFULL);
  std::vector<float> v(10000);
  a.fill_uniform(v.data(), static_cast<tokenmix::Index>(v.size()), -0.5f, 2.0f);
  double mean = 0;
  for (const float x : v) {
    ASSERT_GE(x, -0.5f);
    ASSERT_LT(x, 2.0f);
    mean += x / double(v.size());
  }
  EXPECT_NEAR(mean, 0.75, 0.03);  // 3.5 sigma of the mean of 10^4 uniforms of width 2.5
}

// ---- tensor aliases and views -------------------------------------------------------------------

TEST(Tensor, IsRowMajor) {
  tokenmix::Tensor<float, 3> t(2, 3, 4);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(i);
  EXPECT_EQ(t(0, 0, 1), 1.0f);  // last index contiguous
  EXPECT_EQ(t(0, 1, 0), 4.0f);
  EXPECT_EQ(t(1, 0, 0), 12.0f);
  static_assert(static_cast<int>(tokenmix::Tensor<float, 2>::Layout) == Eigen::RowMajor);
  static_assert(std::is_same_v<tokenmix::Tensor<float, 2>::Index, Eigen::Index>);
}

TEST(Tensor, AsConstViewSharesStorage) {
  std::vector<float> buffer(6);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<float>(i);
  tokenmix::TensorView<float, 2> view(buffer.data(), 2, 3);
  const tokenmix::ConstTensorView<float, 2> cview = tokenmix::as_const(view);
  static_assert(std::is_same_v<decltype(cview.data()), const float*>, "as_const must give a read-only view");
  EXPECT_EQ(cview.data(), buffer.data());
  EXPECT_EQ(cview.dimension(0), 2);
  EXPECT_EQ(cview.dimension(1), 3);
  EXPECT_EQ(cview(1, 2), 5.0f);
  view(1, 2) = 42.0f;  // writes through the mutable view are seen by the const one
  EXPECT_EQ(cview(1, 2), 42.0f);
  EXPECT_EQ(tokenmix::shape_of(cview), tokenmix::shape_of(view));
}

}  // namespace
