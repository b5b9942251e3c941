#pragma once
// Shared by the binding files of the `tokenmix` Python module (one .cpp per family, so a change
// rebuilds one family): NumPy conversion, thread pools, the GIL.
//
// Conventions every binding follows (python/README.md says the same for users):
//   - arguments carry the C++ names as keywords; array arguments are NumPy float32 in C order: other
//     real dtypes and orders are converted (a copy), anything else (or the wrong rank) raises
//     ValueError naming the op, the argument and the expected shape; the op's own checks raise
//     ValueError too (tokenmix::Error derives from std::invalid_argument);
//   - results are new float32 arrays (the C++ tensors handed over without a copy);
//   - `threads=` (default 1) runs the op on a pool of that many threads (pools are cached);
//   - the GIL is released while the op computes;
//   - recurrent state goes in and comes back as arrays (never hidden inside Python objects).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>

#include "tokenmix/tokenmix.hpp"

namespace tokenmix::python {

namespace py = pybind11;

using Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// `obj` as a C-order float32 array of rank R, or ValueError("op: name must be ... [dims]").
template <int R>
Array as_array(const char* op, const char* name, const py::handle& obj, const char* dims) {
  Array a;
  bool ok = false;
  if (py::isinstance<py::array>(obj) || py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj) ||
      py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj)) {
    const py::array raw = py::array::ensure(obj);
    if (raw && (raw.dtype().kind() == 'f' || raw.dtype().kind() == 'i' || raw.dtype().kind() == 'u' ||
                raw.dtype().kind() == 'b')) {
      a = Array::ensure(raw);
      ok = bool(a);
    }
  }
  if (!ok) {
    std::ostringstream os;
    os << op << ": " << name << " must be a real-valued array " << dims << " (got " << std::string(py::str(py::type::of(obj)));
    if (py::isinstance<py::array>(obj)) os << " of dtype " << std::string(py::str(py::array(py::reinterpret_borrow<py::array>(obj)).dtype()));
    os << ")";
    throw py::value_error(os.str());
  }
  if (a.ndim() != R) {
    std::ostringstream os;
    os << op << ": " << name << " has " << a.ndim() << " dimensions (shape (";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
    os << ")), expected " << R << ": " << dims;
    throw py::value_error(os.str());
  }
  return a;
}

template <int R>
ConstTensorView<float, R> view(const Array& a) {
  std::array<Index, R> dims;
  for (int i = 0; i < R; ++i) dims[std::size_t(i)] = static_cast<Index>(a.shape(i));
  return ConstTensorView<float, R>(a.data(), dims);
}

// An optional array argument (None -> nullopt), held so that views into it stay valid.
template <int R>
std::optional<Array> as_optional(const char* op, const char* name, const py::object& obj, const char* dims) {
  if (obj.is_none()) return std::nullopt;
  return as_array<R>(op, name, obj, dims);
}
template <int R>
std::optional<ConstTensorView<float, R>> view(const std::optional<Array>& a) {
  if (!a) return std::nullopt;
  return view<R>(*a);
}

// A tensor handed to NumPy without a copy (the array owns it).
template <int R>
py::array_t<float> to_numpy(Tensor<float, R>&& t) {
  auto* owned = new Tensor<float, R>(std::move(t));
  py::capsule owner(owned, [](void* p) { delete static_cast<Tensor<float, R>*>(p); });
  std::vector<py::ssize_t> shape(R), strides(R);
  py::ssize_t stride = sizeof(float);
  for (int i = R - 1; i >= 0; --i) {
    shape[std::size_t(i)] = owned->dimension(i);
    strides[std::size_t(i)] = stride;
    stride *= std::max<py::ssize_t>(owned->dimension(i), 1);
  }
  return py::array_t<float>(shape, strides, owned->data(), owner);
}

// The device for `threads` (1 or less: the calling thread). Pools are built once per count.
inline const Eigen::ThreadPoolDevice* device_for(const char* op, int threads) {
  if (threads < 1) throw py::value_error(std::string(op) + ": threads must be >= 1, got " + std::to_string(threads));
  if (threads == 1) return nullptr;
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  const std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<ThreadPool>& pool = pools[threads];
  if (!pool) pool = std::make_unique<ThreadPool>(threads);
  return pool->device();
}

using GilRelease = py::gil_scoped_release;

void register_ssm(py::module_& m);
void register_attention(py::module_& m);
void register_linear(py::module_& m);
void register_blocks(py::module_& m);
void register_hybrid(py::module_& m);
void register_mixers(py::module_& m);

}  // namespace tokenmix::python
