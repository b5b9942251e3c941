// Bindings of the blocks family: linear (nn.Linear), rms_norm, gated_rms_norm, layer_norm,
// depthwise_conv2d (channels-last, groups = C) and embedding. Names, argument names and shapes as the
// C++ ops (blocks/*.hpp); conventions in common.hpp.

#include "common.hpp"

namespace tokenmix::python {

namespace {

// ids: a rank-1 integer array (any integer dtype; no float, no bool), as int64 in C order.
py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> as_ids(const char* op, const py::object& obj) {
  const py::array raw = py::array::ensure(obj);
  // An empty list becomes a float64 array: accepted (no ids).
  const bool integral = raw && (raw.dtype().kind() == 'i' || raw.dtype().kind() == 'u');
  if (!raw || !(integral || (raw.size() == 0 && raw.dtype().kind() == 'f'))) {
    std::ostringstream os;
    os << op << ": ids must be an integer array [M] (got " << std::string(py::str(py::type::of(obj)));
    if (raw) os << " of dtype " << std::string(py::str(raw.dtype()));
    os << ")";
    throw py::value_error(os.str());
  }
  if (raw.ndim() != 1) {
    std::ostringstream os;
    os << op << ": ids has " << raw.ndim() << " dimensions, expected 1: [M]";
    throw py::value_error(os.str());
  }
  return py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
}

}  // namespace

void register_blocks(py::module_& m) {
  m.def(
      "linear",
      [](const py::object& x, const py::object& weight, const py::object& bias, int threads) {
        const char* op = "linear";
        const Array xa = as_array<2>(op, "x", x, "[M, K]");
        const Array wa = as_array<2>(op, "weight", weight, "[N, K]");
        const std::optional<Array> ba = as_optional<1>(op, "bias", bias, "[N]");
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = blocks::linear(view<2>(xa), view<2>(wa), view<1>(ba), device);
        }
        return to_numpy(std::move(out));
      },
      py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(), py::kw_only(), py::arg("threads") = 1,
      "nn.Linear / F.linear: out [M, N] = x [M, K] · weightᵀ + bias; weight [N, K] (nn.Linear's [out_features, "
      "in_features]), bias [N] or None. Flatten leading dims of x into M.");

  m.def(
      "rms_norm",
      [](const py::object& x, const py::object& weight, double eps, int threads) {
        const char* op = "rms_norm";
        const Array xa = as_array<2>(op, "x", x, "[M, D]");
        const Array wa = as_array<1>(op, "weight", weight, "[D]");
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = blocks::rms_norm(view<2>(xa), view<1>(wa), eps, device);
        }
        return to_numpy(std::move(out));
      },
      py::arg("x"), py::arg("weight"), py::arg("eps") = 1e-5, py::kw_only(), py::arg("threads") = 1,
      "RMSNorm (transformers' MambaRMSNorm): out [M, D] = weight · x · rsqrt(mean_d(x²) + eps); x [M, D], "
      "weight [D].");

  m.def(
      "gated_rms_norm",
      [](const py::object& x, const py::object& gate, const py::object& weight, double eps,
         const std::optional<Index>& group_size, int threads) {
        const char* op = "gated_rms_norm";
        const Array xa = as_array<2>(op, "x", x, "[M, D]");
        const Array ga = as_array<2>(op, "gate", gate, "[M, D]");
        const Array wa = as_array<1>(op, "weight", weight, "[D]");
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        const Index M = static_cast<Index>(xa.shape(0)), D = static_cast<Index>(xa.shape(1));
        Tensor<float, 2> out(M, D);
        {
          GilRelease release;
          blocks::gated_rms_norm(view<2>(xa), view<2>(ga), view<1>(wa), eps, group_size ? *group_size : D,
                                 TensorView<float, 2>(out.data(), out.dimensions()), device);
        }
        return to_numpy(std::move(out));
      },
      py::arg("x"), py::arg("gate"), py::arg("weight"), py::arg("eps") = 1e-5, py::arg("group_size") = py::none(),
      py::kw_only(), py::arg("threads") = 1,
      "Mamba-2's gated RMSNorm (norm_before_gate=False): g = x · silu(gate); out = weight · g · rsqrt(mean of g² "
      "over each group of group_size channels + eps). x, gate [M, D]; weight [D]; group_size divides D (None: D, "
      "transformers' MambaRMSNormGated; mamba_ssm: D / ngroups). Returns out [M, D].");

  m.def(
      "layer_norm",
      [](const py::object& x, const py::object& weight, const py::object& bias, double eps, int threads) {
        const char* op = "layer_norm";
        const Array xa = as_array<2>(op, "x", x, "[M, D]");
        const Array wa = as_array<1>(op, "weight", weight, "[D]");
        const Array ba = as_array<1>(op, "bias", bias, "[D]");
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = blocks::layer_norm(view<2>(xa), view<1>(wa), view<1>(ba), eps, device);
        }
        return to_numpy(std::move(out));
      },
      py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("eps") = 1e-5, py::kw_only(), py::arg("threads") = 1,
      "nn.LayerNorm over the last axis (biased variance): x [M, D]; weight, bias [D]. Returns out [M, D].");

  m.def(
      "depthwise_conv2d",
      [](const py::object& x, const py::object& weight, const py::object& bias, bool activation_silu, int threads) {
        const char* op = "depthwise_conv2d";
        const Array xa = as_array<4>(op, "x", x, "[B, H, W, C]");
        const Array wa = as_array<3>(op, "weight", weight, "[C, K, K]");
        const std::optional<Array> ba = as_optional<1>(op, "bias", bias, "[C]");
        blocks::DepthwiseConv2dOptions o;
        o.bias = view<1>(ba), o.activation_silu = activation_silu, o.device = device_for(op, threads);
        Tensor<float, 4> out;
        {
          GilRelease release;
          out = blocks::depthwise_conv2d(view<4>(xa), view<3>(wa), o);
        }
        return to_numpy(std::move(out));
      },
      py::arg("x"), py::arg("weight"), py::kw_only(), py::arg("bias") = py::none(), py::arg("activation_silu") = false,
      py::arg("threads") = 1,
      "nn.Conv2d(C, C, K, padding=K // 2, groups=C) on channels-last images, stride 1, odd K, optional bias and "
      "SiLU: x [B, H, W, C]; weight [C, K, K] (PyTorch's [C, 1, K, K] squeezed); bias [C]. Returns out "
      "[B, H, W, C].");

  m.def(
      "embedding",
      [](const py::object& ids, const py::object& table) {
        const char* op = "embedding";
        const auto ia = as_ids(op, ids);
        const Array ta = as_array<2>(op, "table", table, "[V, D]");
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = blocks::embedding(ia.data(), static_cast<Index>(ia.shape(0)), view<2>(ta));
        }
        return to_numpy(std::move(out));
      },
      py::arg("ids"), py::arg("table"),
      "nn.Embedding lookup: ids [M] (integers in [0, V)), table [V, D]. Returns out [M, D] = table[ids].");
}

}  // namespace tokenmix::python
