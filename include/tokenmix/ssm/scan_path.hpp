#pragma once
// Scan paths over an H×W grid (spec vision_ssm.md §0, §2-§7): the order in which a 1-D selective
// scan visits the cells of an image. Grid cell p = i·W + j (row-major); step t of a path reads cell
// index[t]. Paths are values: ssm::selective_scan_2d (selective_scan_2d.hpp) takes a list of them.
//
//   row_major            RM[t] = t
//   col_major            CM[t] = (t mod H)·W + ⌊t / H⌋
//   *_reversed           rev(π)[t] = π[L-1-t]
//   row_snake            PlainMamba π₁: row i left→right when i is even, right→left when odd
//   col_snake            PlainMamba π₃: column j top→bottom when j is even, bottom→top when odd
//   atrous(k)            EfficientVMamba ES2D sub-grid k of the grid padded to even H, W (§4):
//                        k=0 cells (2a, 2b) row-major, k=1 (2a+1, 2b) column-major,
//                        k=2 (2a, 2b+1) row-major, k=3 (2a+1, 2b+1) column-major
//   joined(paths)        the concatenation (MSVMamba's low-resolution [rev RM, CM, rev CM], §6)
//
// index[t] = -1 marks a padding cell (outside the H×W grid: atrous paths of odd H or W); a scan
// reads zeros there and writes nothing. moves[t] is PlainMamba's direction label of step t: 0 at
// t = 0 and for any step that is not a move to a 4-neighbour, 1 right (j+1), 2 left (j-1), 3 up
// (i-1), 4 down (i+1).
//
// scan_path(order, H, W) builds each (order, H, W) once and returns the shared, immutable path.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "tokenmix/config.hpp"
#include "tokenmix/core/tensor.hpp"

namespace tokenmix::ssm {

enum class ScanOrder {
  row_major,
  col_major,
  row_major_reversed,
  col_major_reversed,
  row_snake,
  row_snake_reversed,
  col_snake,
  col_snake_reversed,
  atrous0,
  atrous1,
  atrous2,
  atrous3,
};

inline const char* scan_order_name(ScanOrder o) {
  switch (o) {
    case ScanOrder::row_major: return "row_major";
    case ScanOrder::col_major: return "col_major";
    case ScanOrder::row_major_reversed: return "row_major_reversed";
    case ScanOrder::col_major_reversed: return "col_major_reversed";
    case ScanOrder::row_snake: return "row_snake";
    case ScanOrder::row_snake_reversed: return "row_snake_reversed";
    case ScanOrder::col_snake: return "col_snake";
    case ScanOrder::col_snake_reversed: return "col_snake_reversed";
    case ScanOrder::atrous0: return "atrous0";
    case ScanOrder::atrous1: return "atrous1";
    case ScanOrder::atrous2: return "atrous2";
    case ScanOrder::atrous3: return "atrous3";
  }
  return "?";
}

struct ScanPath {
  Index height = 0, width = 0;      // the grid H×W the indices refer to
  std::vector<Index> index;         // [T] cell read at step t, -1 = padding (zeros in, nothing out)
  std::vector<std::uint8_t> moves;  // [T] PlainMamba direction label of step t (see above)

  Index length() const { return static_cast<Index>(index.size()); }
  Index cells() const { return height * width; }

  // True when every cell of the grid is visited exactly once and there is no padding.
  bool is_bijection() const {
    if (length() != cells()) return false;
    std::vector<char> seen(static_cast<std::size_t>(cells()), 0);
    for (const Index p : index) {
      if (p < 0 || p >= cells() || seen[static_cast<std::size_t>(p)]) return false;
      seen[static_cast<std::size_t>(p)] = 1;
    }
    return true;
  }

  // True when step t visits cell t for every t (row-major, no padding): the image is then already
  // in scan order and a scan can read it as a dense sequence. One pass without early exit (it
  // vectorises): the 2-D engine asks once per direction and call.
  bool is_identity() const {
    bool identity = length() == cells();
    for (Index t = 0; t < length(); ++t) identity &= index[static_cast<std::size_t>(t)] == t;
    return identity;
  }

  // inverse[p] = the step that visits cell p (bijections only).
  std::vector<Index> inverse() const {
    TOKENMIX_CHECK(is_bijection(), "ScanPath::inverse: the path is not a bijection of the ", height, "x", width,
                   " grid");
    std::vector<Index> inv(static_cast<std::size_t>(cells()));
    for (Index t = 0; t < length(); ++t) inv[static_cast<std::size_t>(index[static_cast<std::size_t>(t)])] = t;
    return inv;
  }
};

namespace detail {

// Fills moves from index (grid width `W`).
inline void label_moves(ScanPath& path) {
  const Index W = path.width;
  path.moves.assign(path.index.size(), 0);
  for (std::size_t t = 1; t < path.index.size(); ++t) {
    const Index a = path.index[t - 1], b = path.index[t];
    if (a < 0 || b < 0) continue;
    const Index ia = a / W, ja = a % W, ib = b / W, jb = b % W;
    if (ia == ib && jb == ja + 1) path.moves[t] = 1;
    else if (ia == ib && jb == ja - 1) path.moves[t] = 2;
    else if (ja == jb && ib == ia - 1) path.moves[t] = 3;
    else if (ja == jb && ib == ia + 1) path.moves[t] = 4;
  }
}

inline ScanPath build_scan_path(ScanOrder order, Index H, Index W) {
  TOKENMIX_CHECK(H > 0 && W > 0, "scan_path: the grid must be at least 1x1, got H=", H, " W=", W);
  ScanPath path;
  path.height = H;
  path.width = W;
  std::vector<Index>& idx = path.index;
  auto reversed = [&](ScanOrder base) {
    ScanPath p = build_scan_path(base, H, W);
    return std::vector<Index>(p.index.rbegin(), p.index.rend());
  };
  switch (order) {
    case ScanOrder::row_major:
      for (Index t = 0; t < H * W; ++t) idx.push_back(t);
      break;
    case ScanOrder::col_major:
      for (Index t = 0; t < H * W; ++t) idx.push_back((t % H) * W + t / H);
      break;
    case ScanOrder::row_snake:
      for (Index i = 0; i < H; ++i)
        for (Index k = 0; k < W; ++k) idx.push_back(i * W + (i % 2 == 0 ? k : W - 1 - k));
      break;
    case ScanOrder::col_snake:
      for (Index j = 0; j < W; ++j)
        for (Index k = 0; k < H; ++k) idx.push_back((j % 2 == 0 ? k : H - 1 - k) * W + j);
      break;
    case ScanOrder::row_major_reversed: idx = reversed(ScanOrder::row_major); break;
    case ScanOrder::col_major_reversed: idx = reversed(ScanOrder::col_major); break;
    case ScanOrder::row_snake_reversed: idx = reversed(ScanOrder::row_snake); break;
    case ScanOrder::col_snake_reversed: idx = reversed(ScanOrder::col_snake); break;
    case ScanOrder::atrous0:
    case ScanOrder::atrous1:
    case ScanOrder::atrous2:
    case ScanOrder::atrous3: {
      const int k = static_cast<int>(order) - static_cast<int>(ScanOrder::atrous0);
      const Index h = (H + 1) / 2, w = (W + 1) / 2;  // sub-grid of the grid padded to even size
      const Index di = k % 2, dj = k / 2;            // k=0 (0,0), 1 (1,0), 2 (0,1), 3 (1,1)
      const bool col_major = k % 2 == 1;
      auto cell = [&](Index a, Index b) {
        const Index i = 2 * a + di, j = 2 * b + dj;
        return i < H && j < W ? i * W + j : Index{-1};
      };
      if (!col_major) {
        for (Index a = 0; a < h; ++a)
          for (Index b = 0; b < w; ++b) idx.push_back(cell(a, b));
      } else {
        for (Index b = 0; b < w; ++b)
          for (Index a = 0; a < h; ++a) idx.push_back(cell(a, b));
      }
      break;
    }
  }
  label_moves(path);
  return path;
}

}  // namespace detail

// The path of `order` over an H×W grid, built on first use and shared afterwards (thread-safe).
inline std::shared_ptr<const ScanPath> scan_path(ScanOrder order, Index H, Index W) {
  static std::mutex mutex;
  static std::map<std::tuple<int, Index, Index>, std::shared_ptr<const ScanPath>> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[{static_cast<int>(order), H, W}];
  if (!slot) slot = std::make_shared<const ScanPath>(detail::build_scan_path(order, H, W));
  return slot;
}

// The concatenation of paths over the same grid (one scan, no state reset between the parts).
inline std::shared_ptr<const ScanPath> joined_scan_path(const std::vector<std::shared_ptr<const ScanPath>>& parts) {
  TOKENMIX_CHECK(!parts.empty(), "joined_scan_path: no paths to join");
  auto joined = std::make_shared<ScanPath>();
  joined->height = parts.front()->height;
  joined->width = parts.front()->width;
  for (const auto& p : parts) {
    TOKENMIX_CHECK(p->height == joined->height && p->width == joined->width, "joined_scan_path: a path over a ",
                   p->height, "x", p->width, " grid cannot join one over ", joined->height, "x", joined->width);
    joined->index.insert(joined->index.end(), p->index.begin(), p->index.end());
  }
  detail::label_moves(*joined);
  return joined;
}

// The same for the paths of `orders` over an H×W grid, built on first use and shared afterwards
// (thread-safe): a call per forward pass (MSVMamba's joined half-resolution path) reuses it.
inline std::shared_ptr<const ScanPath> joined_scan_path(const std::vector<ScanOrder>& orders, Index H, Index W) {
  static std::mutex mutex;
  static std::map<std::tuple<std::vector<int>, Index, Index>, std::shared_ptr<const ScanPath>> cache;
  std::vector<int> key;
  for (const ScanOrder o : orders) key.push_back(static_cast<int>(o));
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto it = cache.find({key, H, W}); it != cache.end()) return it->second;
  }
  std::vector<std::shared_ptr<const ScanPath>> parts;
  for (const ScanOrder o : orders) parts.push_back(scan_path(o, H, W));  // takes scan_path's own lock
  std::shared_ptr<const ScanPath> joined = joined_scan_path(parts);
  const std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(std::make_tuple(key, H, W), joined).first->second;
}

}  // namespace tokenmix::ssm
