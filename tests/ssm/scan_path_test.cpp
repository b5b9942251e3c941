// ssm::ScanPath / scan_path: every order is what its paper says (bijections and their inverses for
// every grid up to 7x7, the papers' example sequences, snakes moving to 4-neighbours, the atrous
// sub-grids tiling the padded grid exactly once) and each (order, H, W) is built once, as is each
// join of orders.

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "tokenmix/ssm/scan_path.hpp"

namespace tokenmix {
namespace {

using ssm::ScanOrder;

const std::vector<ScanOrder> kBijectiveOrders = {
    ScanOrder::row_major, ScanOrder::col_major, ScanOrder::row_major_reversed, ScanOrder::col_major_reversed,
    ScanOrder::row_snake, ScanOrder::row_snake_reversed, ScanOrder::col_snake, ScanOrder::col_snake_reversed};

TEST(ScanPath, EveryOrderIsABijectionWithItsInverse) {
  for (Index H = 1; H <= 7; ++H)
    for (Index W = 1; W <= 7; ++W)
      for (const ScanOrder o : kBijectiveOrders) {
        const auto path = ssm::scan_path(o, H, W);
        ASSERT_TRUE(path->is_bijection()) << ssm::scan_order_name(o) << " " << H << "x" << W;
        const std::vector<Index> inv = path->inverse();
        for (Index t = 0; t < path->length(); ++t) ASSERT_EQ(inv[path->index[t]], t);
      }
}

TEST(ScanPath, FollowsThePapersFormulas) {
  const Index H = 3, W = 4;
  EXPECT_EQ(ssm::scan_path(ScanOrder::col_major, H, W)->index, (std::vector<Index>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(ssm::scan_path(ScanOrder::row_snake, H, W)->index, (std::vector<Index>{0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11}));
  EXPECT_EQ(ssm::scan_path(ScanOrder::col_snake, H, W)->index, (std::vector<Index>{0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3}));
  const auto rm = ssm::scan_path(ScanOrder::row_major, H, W), rev = ssm::scan_path(ScanOrder::row_major_reversed, H, W);
  EXPECT_TRUE(std::equal(rm->index.begin(), rm->index.end(), rev->index.rbegin()));
  // Snakes move to a 4-neighbour at every step: labels 1-4 only (0 at the start).
  for (const ScanOrder o : {ScanOrder::row_snake, ScanOrder::row_snake_reversed, ScanOrder::col_snake,
                            ScanOrder::col_snake_reversed}) {
    const auto p = ssm::scan_path(o, 5, 6);
    EXPECT_EQ(p->moves[0], 0);
    for (Index t = 1; t < p->length(); ++t) ASSERT_GE(p->moves[t], 1) << ssm::scan_order_name(o) << " t=" << t;
  }
  EXPECT_EQ(ssm::scan_path(ScanOrder::row_snake, 2, 3)->moves, (std::vector<std::uint8_t>{0, 1, 1, 4, 2, 2}));
  // Built once per (order, H, W).
  EXPECT_EQ(ssm::scan_path(ScanOrder::col_snake, 5, 6), ssm::scan_path(ScanOrder::col_snake, 5, 6));
}

// The four stride-2 sub-grids cover each cell of the grid once; padding cells of odd sizes are -1.
TEST(ScanPath, AtrousSubGridsTileThePaddedGrid) {
  for (Index H = 1; H <= 7; ++H)
    for (Index W = 1; W <= 7; ++W) {
      std::vector<int> seen(static_cast<std::size_t>(H * W), 0);
      Index padding = 0;
      for (const ScanOrder o : {ScanOrder::atrous0, ScanOrder::atrous1, ScanOrder::atrous2, ScanOrder::atrous3}) {
        const auto p = ssm::scan_path(o, H, W);
        EXPECT_EQ(p->length(), ((H + 1) / 2) * ((W + 1) / 2));
        for (const Index c : p->index) c < 0 ? ++padding : ++seen[static_cast<std::size_t>(c)];
      }
      EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; })) << H << "x" << W;
      EXPECT_EQ(padding, ((H + 1) / 2 * 2) * ((W + 1) / 2 * 2) - H * W);
    }
  // Sub-grid 1 is (2a+1, 2b) in column-major order.
  EXPECT_EQ(ssm::scan_path(ScanOrder::atrous1, 4, 4)->index, (std::vector<Index>{4, 12, 6, 14}));
}

// is_identity (the 2-D engine then reads the image as a dense sequence): row-major paths, and
// column-major ones where a side is 1; nothing with padding, a reversal or more steps than cells.
TEST(ScanPath, IdentityIsRowMajorOrder) {
  for (Index H = 1; H <= 5; ++H)
    for (Index W = 1; W <= 5; ++W)
      for (const ScanOrder o : kBijectiveOrders) {
        const auto p = ssm::scan_path(o, H, W);
        bool identity = true;
        for (Index t = 0; t < p->length(); ++t) identity = identity && p->index[t] == t;
        EXPECT_EQ(p->is_identity(), identity) << ssm::scan_order_name(o) << " " << H << "x" << W;
      }
  EXPECT_TRUE(ssm::scan_path(ScanOrder::row_major, 4, 5)->is_identity());
  EXPECT_TRUE(ssm::scan_path(ScanOrder::col_major, 1, 5)->is_identity());
  EXPECT_FALSE(ssm::scan_path(ScanOrder::col_major, 4, 5)->is_identity());
  EXPECT_FALSE(ssm::scan_path(ScanOrder::row_major_reversed, 4, 5)->is_identity());
  EXPECT_TRUE(ssm::scan_path(ScanOrder::atrous0, 1, 1)->is_identity());   // [0]
  EXPECT_FALSE(ssm::scan_path(ScanOrder::atrous1, 1, 1)->is_identity());  // [-1]: a padding cell
  EXPECT_FALSE(ssm::scan_path(ScanOrder::atrous0, 2, 2)->is_identity());  // [0]: one cell of four
  EXPECT_FALSE(ssm::joined_scan_path({ScanOrder::row_major, ScanOrder::row_major}, 2, 3)->is_identity());
}

// A join of orders is the concatenation of their paths, built once per (orders, H, W).
TEST(ScanPath, JoinedOrdersAreConcatenatedAndBuiltOnce) {
  const std::vector<ScanOrder> orders = {ScanOrder::row_major_reversed, ScanOrder::col_major, ScanOrder::col_major_reversed};
  const auto joined = ssm::joined_scan_path(orders, 3, 4);
  std::vector<Index> want;
  for (const ScanOrder o : orders) {
    const auto part = ssm::scan_path(o, 3, 4);
    want.insert(want.end(), part->index.begin(), part->index.end());
  }
  EXPECT_EQ(joined->index, want);
  EXPECT_EQ(joined->height, 3);
  EXPECT_EQ(joined->width, 4);
  EXPECT_EQ(joined, ssm::joined_scan_path(orders, 3, 4));  // the same shared path
  EXPECT_NE(joined, ssm::joined_scan_path(orders, 4, 3));
  EXPECT_NE(joined, ssm::joined_scan_path({ScanOrder::col_major, ScanOrder::row_major}, 3, 4));
}

}  // namespace
}  // namespace tokenmix
