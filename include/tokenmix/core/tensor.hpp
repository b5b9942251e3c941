#pragma once
// Tensor aliases (DESIGN §2). Everything in tokenmix is row-major (C order, like PyTorch and NumPy);
// Eigen's default is column-major, so never use Eigen::Tensor<T, R> without these aliases.
//
// Dimension glossary used in every shape comment: B batch, L length, D channels, H heads, P head dim,
// N state size, G groups, K window / kernel size, R dt rank, C chunk / block size.

// The thread-pool device (core/threading.hpp) needs EIGEN_USE_THREADS before the Tensor header.
// The CMake target defines it for every consumer TU so that all TUs agree (ODR); this guard covers
// builds that do not use the target. Include tokenmix before <unsupported/Eigen/CXX11/Tensor>.
#ifndef EIGEN_USE_THREADS
#define EIGEN_USE_THREADS
#endif
#include <optional>

#include <unsupported/Eigen/CXX11/Tensor>

namespace tokenmix {

using Index = Eigen::Index;

// Owning row-major tensor.
template <class T, int R>
using Tensor = Eigen::Tensor<T, R, Eigen::RowMajor, Index>;

// Non-owning views over caller buffers (unaligned: callers may pass any float*).
template <class T, int R>
using TensorView = Eigen::TensorMap<Tensor<T, R>>;
template <class T, int R>
using ConstTensorView = Eigen::TensorMap<const Tensor<T, R>>;

// A mutable view seen as read-only (Eigen has no implicit TensorMap<T> -> TensorMap<const T>).
template <class T, int R>
ConstTensorView<T, R> as_const(const TensorView<T, R>& view) {
  return ConstTensorView<T, R>(view.data(), view.dimensions());
}

// A tensor as the optional read-only view the ops' option structs and blocks::linear's bias take.
template <class T, int R>
std::optional<ConstTensorView<T, R>> optional_view(const Tensor<T, R>& t) {
  return ConstTensorView<T, R>(t.data(), t.dimensions());
}

}  // namespace tokenmix
