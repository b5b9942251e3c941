// Bindings of the ssm family: the selective scan (+ states, decode step), causal conv1d (+ update),
// Mamba-2 SSD (+ decode step), S4D's diagonal SSM (+ step, discretisation), LBMamba's scan, the 2-D
// layouts (VMamba, PlainMamba, EfficientVMamba, GroupMamba, MSVMamba), Vim's bidirectional scan and
// Spatial-Mamba's state fusion.
// Names, argument names and shapes as the C++ ops (ssm/*.hpp); conventions in common.hpp.

#include <limits>
#include <string>
#include <vector>

#include "common.hpp"

namespace tokenmix::python {

namespace {

// B or C: [B, L, G, N], [B, L, N] or [D, N] (time-invariant).
struct Operand {
  Array array;
  ssm::ScanOperand operand() const {
    if (array.ndim() == 4) return ssm::ScanOperand(view<4>(array));
    if (array.ndim() == 3) return ssm::ScanOperand(view<3>(array));
    return ssm::ScanOperand(view<2>(array));
  }
  ssm::StepOperand step_operand() const {
    if (array.ndim() == 3) return ssm::StepOperand(view<3>(array));
    return ssm::StepOperand(view<2>(array));
  }
};
Operand as_operand(const char* op, const char* name, const py::object& obj) {
  const char* dims = "[B, L, G, N], [B, L, N] or [D, N]";
  const py::array raw = py::array::ensure(obj);
  const int rank = raw ? int(raw.ndim()) : 0;
  if (rank == 4) return {as_array<4>(op, name, obj, dims)};
  if (rank == 3) return {as_array<3>(op, name, obj, dims)};
  return {as_array<2>(op, name, obj, dims)};
}

struct ScanArgs {
  Array u, delta, A;
  Operand B, C;
  std::optional<Array> D, z, delta_bias, initial_state;
  ssm::SelectiveScanOptions options(const Eigen::ThreadPoolDevice* device, bool delta_softplus) const {
    ssm::SelectiveScanOptions o;
    o.D = view<1>(D), o.z = view<3>(z), o.delta_bias = view<1>(delta_bias), o.initial_state = view<3>(initial_state);
    o.delta_softplus = delta_softplus, o.device = device;
    return o;
  }
};

ScanArgs scan_args(const char* op, const py::object& u, const py::object& delta, const py::object& A,
                   const py::object& B, const py::object& C, const py::object& D, const py::object& z,
                   const py::object& delta_bias, const py::object& initial_state) {
  return ScanArgs{as_array<3>(op, "u", u, "[B, L, D]"), as_array<3>(op, "delta", delta, "[B, L, D]"),
                  as_array<2>(op, "A", A, "[D, N]"), as_operand(op, "B", B), as_operand(op, "C", C),
                  as_optional<1>(op, "D", D, "[D]"), as_optional<3>(op, "z", z, "[B, L, D]"),
                  as_optional<1>(op, "delta_bias", delta_bias, "[D]"),
                  as_optional<3>(op, "initial_state", initial_state, "[B, D, N]")};
}

#define TOKENMIX_SCAN_KWARGS                                                                                   \
  py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(), py::arg("D") = py::none(), \
      py::arg("z") = py::none(), py::arg("delta_bias") = py::none(), py::arg("delta_softplus") = false,          \
      py::arg("initial_state") = py::none(), py::arg("threads") = 1

}  // namespace

void register_ssm(py::module_& m) {
  m.def(
      "selective_scan",
      [](const py::object& u, const py::object& delta, const py::object& A, const py::object& B, const py::object& C,
         const py::object& D, const py::object& z, const py::object& delta_bias, bool delta_softplus,
         const py::object& initial_state, int threads) {
        const char* op = "selective_scan";
        const ScanArgs a = scan_args(op, u, delta, A, B, C, D, z, delta_bias, initial_state);
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        ssm::SelectiveScanResult r;
        {
          GilRelease release;
          r = ssm::selective_scan(view<3>(a.u), view<3>(a.delta), view<2>(a.A), a.B.operand(), a.C.operand(),
                                  a.options(device, delta_softplus));
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.last_state)));
      },
      TOKENMIX_SCAN_KWARGS,
      "Mamba-1 selective scan (mamba_ssm's selective_scan_fn, token-major): u, delta, z [B, L, D]; A [D, N]; "
      "B, C [B, L, G, N] / [B, L, N] / [D, N]; D, delta_bias [D]; initial_state [B, D, N]. "
      "Returns (out [B, L, D], last_state [B, D, N]).");

  m.def(
      "selective_scan_states",
      [](const py::object& u, const py::object& delta, const py::object& A, const py::object& B, const py::object& C,
         const py::object& D, const py::object& z, const py::object& delta_bias, bool delta_softplus,
         const py::object& initial_state, int threads) {
        const char* op = "selective_scan_states";
        const ScanArgs a = scan_args(op, u, delta, A, B, C, D, z, delta_bias, initial_state);
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        ssm::SelectiveScanStatesResult r;
        {
          GilRelease release;
          r = ssm::selective_scan_states(view<3>(a.u), view<3>(a.delta), view<2>(a.A), a.B.operand(), a.C.operand(),
                                         a.options(device, delta_softplus));
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.states)), to_numpy(std::move(r.last_state)));
      },
      TOKENMIX_SCAN_KWARGS,
      "The selective scan also returning every state: (out [B, L, D], states [B, L, D, N], last_state [B, D, N]).");

  m.def(
      "selective_state_update",
      [](const py::object& state, const py::object& x, const py::object& dt, const py::object& A, const py::object& B,
         const py::object& C, const py::object& D, const py::object& z, const py::object& dt_bias, bool dt_softplus,
         int threads) {
        const char* op = "selective_state_update";
        const Array st = as_array<3>(op, "state", state, "[B, D, N]");
        const Array xa = as_array<2>(op, "x", x, "[B, D]"), dta = as_array<2>(op, "dt", dt, "[B, D]");
        const Array Aa = as_array<2>(op, "A", A, "[D, N]");
        const Operand Ba = as_operand(op, "B", B), Ca = as_operand(op, "C", C);  // [B, G, N] or [D, N]
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[D]"), za = as_optional<2>(op, "z", z, "[B, D]");
        const std::optional<Array> bias = as_optional<1>(op, "dt_bias", dt_bias, "[D]");
        // The state is updated in a copy that is returned (the caller's array is left as it was).
        Tensor<float, 3> new_state = view<3>(st);
        ssm::SelectiveStateUpdateOptions o;
        o.D = view<1>(Da), o.z = view<2>(za), o.dt_bias = view<1>(bias), o.dt_softplus = dt_softplus;
        o.device = device_for(op, threads);
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = ssm::selective_state_update(new_state, view<2>(xa), view<2>(dta), view<2>(Aa), Ba.step_operand(),
                                            Ca.step_operand(), o);
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(new_state)));
      },
      py::arg("state"), py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(),
      py::arg("D") = py::none(), py::arg("z") = py::none(), py::arg("dt_bias") = py::none(),
      py::arg("dt_softplus") = false, py::arg("threads") = 1,
      "One decode step of the selective scan (mamba_ssm's selective_state_update): state [B, D, N], "
      "x, dt, z [B, D]; A [D, N]; B, C [B, G, N] or [D, N] (time-invariant). Returns (out [B, D], new_state "
      "[B, D, N]); the state argument is not modified.");

  // ---- causal conv1d ----
  m.def(
      "causal_conv1d",
      [](const py::object& x, const py::object& weight, const py::object& bias, bool activation_silu,
         const py::object& initial_state, int threads) {
        const char* op = "causal_conv1d";
        const Array xa = as_array<3>(op, "x", x, "[B, L, D]"), wa = as_array<2>(op, "weight", weight, "[D, K]");
        const std::optional<Array> ba = as_optional<1>(op, "bias", bias, "[D]");
        const std::optional<Array> sa = as_optional<3>(op, "initial_state", initial_state, "[B, D, K-1]");
        ssm::CausalConv1dOptions o;
        o.bias = view<1>(ba), o.activation_silu = activation_silu, o.initial_state = view<3>(sa);
        o.device = device_for(op, threads);
        ssm::CausalConv1dResult r;
        {
          GilRelease release;
          r = ssm::causal_conv1d(view<3>(xa), view<2>(wa), o);
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.final_state)));
      },
      py::arg("x"), py::arg("weight"), py::kw_only(), py::arg("bias") = py::none(), py::arg("activation_silu") = false,
      py::arg("initial_state") = py::none(), py::arg("threads") = 1,
      "Depthwise causal conv1d (causal_conv1d_fn, token-major): x [B, L, D], weight [D, K], bias [D], "
      "initial_state [B, D, K-1] (the previous raw inputs, oldest first). Returns (out [B, L, D], final_state "
      "[B, D, K-1]).");

  m.def(
      "causal_conv1d_update",
      [](const py::object& x, const py::object& conv_state, const py::object& weight, const py::object& bias,
         bool activation_silu, int threads) {
        const char* op = "causal_conv1d_update";
        const Array xa = as_array<2>(op, "x", x, "[B, D]"), wa = as_array<2>(op, "weight", weight, "[D, K]");
        const Array sa = as_array<3>(op, "conv_state", conv_state, "[B, D, K-1]");
        const std::optional<Array> ba = as_optional<1>(op, "bias", bias, "[D]");
        ssm::CausalConv1dOptions o;
        o.bias = view<1>(ba), o.activation_silu = activation_silu, o.device = device_for(op, threads);
        Tensor<float, 3> state = view<3>(sa);  // a copy: the caller's array is not modified
        Tensor<float, 2> out;
        {
          GilRelease release;
          out = ssm::causal_conv1d_update(view<2>(xa), state, view<2>(wa), o);
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(state)));
      },
      py::arg("x"), py::arg("conv_state"), py::arg("weight"), py::kw_only(), py::arg("bias") = py::none(),
      py::arg("activation_silu") = false, py::arg("threads") = 1,
      "One decode step of causal_conv1d: x [B, D], conv_state [B, D, K-1]. Returns (out [B, D], new_conv_state).");

  // ---- Mamba-2 SSD ----
  m.def(
      "ssd",
      [](const py::object& x, const py::object& dt, const py::object& A, const py::object& B, const py::object& C,
         const py::object& D, const py::object& z, const py::object& dt_bias, bool dt_softplus, float dt_min,
         float dt_max, const py::object& initial_state, const py::object& seq_idx, const std::string& algorithm,
         Index chunk_size, int threads) {
        const char* op = "ssd";
        const Array xa = as_array<4>(op, "x", x, "[B, L, H, P]"), dta = as_array<3>(op, "dt", dt, "[B, L, H]");
        const Array Aa = as_array<1>(op, "A", A, "[H]");
        const Array Ba = as_array<4>(op, "B", B, "[B, L, G, N]"), Ca = as_array<4>(op, "C", C, "[B, L, G, N]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[H] or [H*P]");
        const std::optional<Array> za = as_optional<4>(op, "z", z, "[B, L, H, P]");
        const std::optional<Array> bias = as_optional<1>(op, "dt_bias", dt_bias, "[H]");
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, H, P, N]");
        std::optional<py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>> seq;
        if (!seq_idx.is_none()) {
          seq = py::array_t<std::int32_t, py::array::c_style | py::array::forcecast>::ensure(seq_idx);
          if (!*seq || seq->ndim() != 2) throw py::value_error("ssd: seq_idx must be an integer array [B, L]");
        }
        ssm::SsdOptions o;
        o.D = view<1>(Da), o.z = view<4>(za), o.dt_bias = view<1>(bias), o.dt_softplus = dt_softplus;
        o.dt_min = dt_min, o.dt_max = dt_max, o.initial_state = view<4>(h0), o.chunk_size = chunk_size;
        if (seq) o.seq_idx.emplace(seq->data(), Index(seq->shape(0)), Index(seq->shape(1)));
        if (algorithm == "auto") o.algorithm = ssm::SsdAlgorithm::auto_select;
        else if (algorithm == "chunked") o.algorithm = ssm::SsdAlgorithm::chunked;
        else if (algorithm == "recurrent") o.algorithm = ssm::SsdAlgorithm::recurrent;
        else throw py::value_error("ssd: algorithm must be 'auto', 'chunked' or 'recurrent', got '" + algorithm + "'");
        o.device = device_for(op, threads);
        ssm::SsdResult r;
        {
          GilRelease release;
          r = ssm::ssd(view<4>(xa), view<3>(dta), view<1>(Aa), view<4>(Ba), view<4>(Ca), o);
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.final_state)));
      },
      py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(), py::arg("D") = py::none(),
      py::arg("z") = py::none(), py::arg("dt_bias") = py::none(), py::arg("dt_softplus") = false,
      py::arg("dt_min") = 0.0f, py::arg("dt_max") = std::numeric_limits<float>::infinity(),
      py::arg("initial_state") = py::none(), py::arg("seq_idx") = py::none(), py::arg("algorithm") = "auto",
      py::arg("chunk_size") = 0, py::arg("threads") = 1,
      "Mamba-2 SSD (mamba_chunk_scan_combined): x [B, L, H, P], dt [B, L, H], A [H], B, C [B, L, G, N], "
      "D [H] or [H*P], z [B, L, H, P], dt_bias [H], initial_state [B, H, P, N], seq_idx [B, L] int. "
      "Returns (out [B, L, H, P], final_state [B, H, P, N]).");

  m.def(
      "ssd_state_update",
      [](const py::object& state, const py::object& x, const py::object& dt, const py::object& A, const py::object& B,
         const py::object& C, const py::object& D, const py::object& z, const py::object& dt_bias, bool dt_softplus,
         int threads) {
        const char* op = "ssd_state_update";
        const Array sa = as_array<4>(op, "state", state, "[B, H, P, N]");
        const Array xa = as_array<3>(op, "x", x, "[B, H, P]"), dta = as_array<2>(op, "dt", dt, "[B, H]");
        const Array Aa = as_array<1>(op, "A", A, "[H]");
        const Array Ba = as_array<3>(op, "B", B, "[B, G, N]"), Ca = as_array<3>(op, "C", C, "[B, G, N]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[H] or [H*P]");
        const std::optional<Array> za = as_optional<4>(op, "z", z, "[B, 1, H, P]");
        const std::optional<Array> bias = as_optional<1>(op, "dt_bias", dt_bias, "[H]");
        ssm::SsdOptions o;
        o.D = view<1>(Da), o.z = view<4>(za), o.dt_bias = view<1>(bias), o.dt_softplus = dt_softplus;
        o.device = device_for(op, threads);
        Tensor<float, 4> new_state = view<4>(sa);
        Tensor<float, 3> out;
        {
          GilRelease release;
          out = ssm::ssd_state_update(new_state, view<3>(xa), view<2>(dta), view<1>(Aa), view<3>(Ba), view<3>(Ca), o);
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(new_state)));
      },
      py::arg("state"), py::arg("x"), py::arg("dt"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(),
      py::arg("D") = py::none(), py::arg("z") = py::none(), py::arg("dt_bias") = py::none(),
      py::arg("dt_softplus") = false, py::arg("threads") = 1,
      "One decode step of SSD: state [B, H, P, N], x [B, H, P], dt [B, H], B, C [B, G, N]. Returns (out [B, H, P], "
      "new_state).");

  // ---- S4D diagonal SSM ----
  m.def(
      "diagonal_ssm",
      [](const py::object& x, const py::object& dA, const py::object& C, const py::object& D,
         const py::object& initial_state, int threads) {
        const char* op = "diagonal_ssm";
        const Array xa = as_array<3>(op, "x", x, "[B, L, D]");
        const Array dAa = as_array<3>(op, "dA", dA, "[Hp, M, 2]"), Ca = as_array<3>(op, "C", C, "[Hp, M, 2]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[Hp]");
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, D, M, 2]");
        ssm::DiagonalSsmOptions o;
        o.D = view<1>(Da), o.initial_state = view<4>(h0), o.device = device_for(op, threads);
        ssm::DiagonalSsmResult r;
        {
          GilRelease release;
          r = ssm::diagonal_ssm(view<3>(xa), view<3>(dAa), view<3>(Ca), o);
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.final_state)));
      },
      py::arg("x"), py::arg("dA"), py::arg("C"), py::kw_only(), py::arg("D") = py::none(),
      py::arg("initial_state") = py::none(), py::arg("threads") = 1,
      "S4D's diagonal LTI SSM: S_t = dA·S_{t-1} + x_t, out = 2·Re(Σ_m C·S) + D·x; x [B, L, D], dA, C [Hp, M, 2] "
      "(complex as (re, im)), D [Hp], initial_state [B, D, M, 2]. Returns (out [B, L, D], final_state).");

  m.def(
      "s4d_discretize",
      [](const py::object& A, const py::object& B, const py::object& C, const py::object& dt, const std::string& method) {
        const char* op = "s4d_discretize";
        const Array Aa = as_array<3>(op, "A", A, "[Hp, M, 2]"), Ba = as_array<3>(op, "B", B, "[Hp, M, 2]");
        const Array Ca = as_array<3>(op, "C", C, "[Hp, M, 2]"), dta = as_array<1>(op, "dt", dt, "[Hp]");
        ssm::S4dDiscretization d;
        if (method == "bilinear") d = ssm::S4dDiscretization::bilinear;
        else if (method == "zoh") d = ssm::S4dDiscretization::zoh;
        else throw py::value_error("s4d_discretize: method must be 'bilinear' or 'zoh', got '" + method + "'");
        ssm::DiagonalSsmParams p = ssm::s4d_discretize(view<3>(Aa), view<3>(Ba), view<3>(Ca), view<1>(dta), d);
        return py::make_tuple(to_numpy(std::move(p.dA)), to_numpy(std::move(p.C)));
      },
      py::arg("A"), py::arg("B"), py::arg("C"), py::arg("dt"), py::kw_only(), py::arg("method") = "bilinear",
      "Continuous (A, B, C) [Hp, M, 2] and dt [Hp] to diagonal_ssm's (dA, C·dB), bilinear (H3) or zoh (S4D).");

  // ---- LBMamba, the vision layouts, Spatial-Mamba's state fusion, the diagonal SSM's step ----
  m.def(
      "local_bidirectional_scan",
      [](const py::object& u, const py::object& delta, const py::object& A, const py::object& B, const py::object& C,
         Index window, const py::object& D, const py::object& z, const py::object& delta_bias, bool delta_softplus,
         const py::object& initial_state, int threads) {
        const char* op = "local_bidirectional_scan";
        const ScanArgs a = scan_args(op, u, delta, A, B, C, D, z, delta_bias, initial_state);
        const Eigen::ThreadPoolDevice* device = device_for(op, threads);
        ssm::SelectiveScanResult r;
        {
          GilRelease release;
          r = ssm::local_bidirectional_scan(view<3>(a.u), view<3>(a.delta), view<2>(a.A), a.B.operand(), a.C.operand(),
                                            a.options(device, delta_softplus), window);
        }
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.last_state)));
      },
      py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::arg("window"), py::kw_only(),
      py::arg("D") = py::none(), py::arg("z") = py::none(), py::arg("delta_bias") = py::none(),
      py::arg("delta_softplus") = false, py::arg("initial_state") = py::none(), py::arg("threads") = 1,
      "LBMamba's local-bidirectional scan: the forward scan plus a reverse scan inside aligned windows of "
      "`window` tokens (same arguments as selective_scan). Returns (out [B, L, D], last forward state [B, D, N]).");

  // The 2-D layouts share the engine's arguments: u [B, H, W, Du], delta [B, H, W, Dd], A [Dp, N],
  // B, C [B, H, W, G, N] (the layout fixes how many channels / groups each direction uses).
  auto scan_2d = [&m](const char* name, const char* doc, auto layout) {
    m.def(
        name,
        [name, layout](const py::object& u, const py::object& delta, const py::object& A, const py::object& B,
                       const py::object& C, const py::object& D, const py::object& delta_bias, bool delta_softplus,
                       float merge_scale, const py::object& z, const py::object& B_offset, bool permute_params,
                       int threads) {
          const Array ua = as_array<4>(name, "u", u, "[B, H, W, Du]"), da = as_array<4>(name, "delta", delta, "[B, H, W, Dd]");
          const Array Aa = as_array<2>(name, "A", A, "[Dp, N]");
          const Array Ba = as_array<5>(name, "B", B, "[B, H, W, G, N]"), Ca = as_array<5>(name, "C", C, "[B, H, W, G, N]");
          const std::optional<Array> Da = as_optional<1>(name, "D", D, "[Dp]");
          const std::optional<Array> bias = as_optional<1>(name, "delta_bias", delta_bias, "[Dp]");
          const std::optional<Array> za = as_optional<4>(name, "z", z, "[B, H, W, Do]");
          const std::optional<Array> theta = as_optional<2>(name, "B_offset", B_offset, "[5, N]");
          ssm::SelectiveScan2dOptions o;
          o.D = view<1>(Da), o.delta_bias = view<1>(bias), o.delta_softplus = delta_softplus, o.merge_scale = merge_scale;
          o.z = view<4>(za), o.B_offset = view<2>(theta), o.permute_params = permute_params;
          o.device = device_for(name, threads);
          Tensor<float, 4> out;
          {
            GilRelease release;
            out = layout(view<4>(ua), view<4>(da), view<2>(Aa), view<5>(Ba), view<5>(Ca), o);
          }
          return to_numpy(std::move(out));
        },
        py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(), py::arg("D") = py::none(),
        py::arg("delta_bias") = py::none(), py::arg("delta_softplus") = false, py::arg("merge_scale") = 1.0f,
        py::arg("z") = py::none(), py::arg("B_offset") = py::none(), py::arg("permute_params") = true,
        py::arg("threads") = 1, doc);
  };
  using V4 = ConstTensorView<float, 4>;
  using V5 = ConstTensorView<float, 5>;
  using V2 = ConstTensorView<float, 2>;
  scan_2d("cross_scan_2d",
          "VMamba SS2D: row-major, column-major and both reversed, K = 4 parameter groups (delta [B, H, W, 4D], "
          "A [4D, N], B, C [B, H, W, 4, N]), outputs summed. Returns out [B, H, W, D].",
          [](const V4& u, const V4& d, const V2& A, const V5& B, const V5& C, const ssm::SelectiveScan2dOptions& o) {
            return ssm::cross_scan_2d(u, d, A, B, C, o);
          });
  scan_2d("snake_scan_2d",
          "PlainMamba: 4 snake orders sharing parameters, B_offset [5, N] the Θ offsets by move; "
          "permute_params=False reproduces the released code. Returns out [B, H, W, D].",
          [](const V4& u, const V4& d, const V2& A, const V5& B, const V5& C, const ssm::SelectiveScan2dOptions& o) {
            return ssm::snake_scan_2d(u, d, A, B, C, o);
          });
  scan_2d("atrous_scan_2d", "EfficientVMamba ES2D: 4 stride-2 sub-grids. Returns out [B, H, W, D].",
          [](const V4& u, const V4& d, const V2& A, const V5& B, const V5& C, const ssm::SelectiveScan2dOptions& o) {
            return ssm::atrous_scan_2d(u, d, A, B, C, o);
          });
  scan_2d("group_scan_2d", "GroupMamba: 4 channel groups, each in one direction. Returns out [B, H, W, D].",
          [](const V4& u, const V4& d, const V2& A, const V5& B, const V5& C, const ssm::SelectiveScan2dOptions& o) {
            return ssm::group_scan_2d(u, d, A, B, C, o);
          });

  m.def(
      "bidirectional_scan",
      [](const py::object& u, const py::object& delta, const py::object& A, const py::object& B, const py::object& C,
         const std::string& variant, const py::object& z, const py::object& D, const py::object& delta_bias,
         bool delta_softplus, int threads) {
        const char* op = "bidirectional_scan";
        const Array ua = as_array<3>(op, "u", u, "[B, L, D or 2D]"), da = as_array<3>(op, "delta", delta, "[B, L, D or 2D]");
        const Array Aa = as_array<2>(op, "A", A, "[2D, N]");
        const Array Ba = as_array<4>(op, "B", B, "[B, L, 1 or 2, N]"), Ca = as_array<4>(op, "C", C, "[B, L, 1 or 2, N]");
        const std::optional<Array> za = as_optional<3>(op, "z", z, "[B, L, D]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[D or 2D]");
        const std::optional<Array> bias = as_optional<1>(op, "delta_bias", delta_bias, "[D or 2D]");
        ssm::VimVariant v;
        if (variant == "v2") v = ssm::VimVariant::v2;
        else if (variant == "v1") v = ssm::VimVariant::v1;
        else throw py::value_error("bidirectional_scan: variant must be 'v1' or 'v2', got '" + variant + "'");
        ssm::SelectiveScan2dOptions o;
        o.D = view<1>(Da), o.delta_bias = view<1>(bias), o.delta_softplus = delta_softplus;
        o.device = device_for(op, threads);
        Tensor<float, 3> out;
        {
          GilRelease release;
          out = ssm::bidirectional_scan(view<3>(ua), view<3>(da), view<2>(Aa), view<4>(Ba), view<4>(Ca), v, view<3>(za), o);
        }
        return to_numpy(std::move(out));
      },
      py::arg("u"), py::arg("delta"), py::arg("A"), py::arg("B"), py::arg("C"), py::kw_only(), py::arg("variant") = "v2",
      py::arg("z") = py::none(), py::arg("D") = py::none(), py::arg("delta_bias") = py::none(),
      py::arg("delta_softplus") = false, py::arg("threads") = 1,
      "Vision Mamba's bidirectional scan over sequences: v2 (separate backward parameters: u, delta [B, L, 2D], "
      "B, C [B, L, 2, N], out = (y_f + y_b) / 2 * silu(z)) or v1 (shared; B, C [B, L, 1, N], no /2). "
      "A [2D, N]. Returns out [B, L, D].");

  m.def(
      "multiscale_scan_2d",
      [](const py::object& u_full, const py::object& delta_full, const py::object& B_full, const py::object& C_full,
         const py::object& u_low, const py::object& delta_low, const py::object& B_low, const py::object& C_low,
         const py::object& A, const py::object& D, const py::object& delta_bias, bool delta_softplus,
         const py::object& z, int threads) {
        const char* op = "multiscale_scan_2d";
        const Array uf = as_array<4>(op, "u_full", u_full, "[B, H, W, D]"), df = as_array<4>(op, "delta_full", delta_full, "[B, H, W, D]");
        const Array Bf = as_array<5>(op, "B_full", B_full, "[B, H, W, 1, N]"), Cf = as_array<5>(op, "C_full", C_full, "[B, H, W, 1, N]");
        const Array ul = as_array<4>(op, "u_low", u_low, "[B, h, w, D]"), dl = as_array<4>(op, "delta_low", delta_low, "[B, h, w, 3D]");
        const Array Bl = as_array<5>(op, "B_low", B_low, "[B, h, w, 3, N]"), Cl = as_array<5>(op, "C_low", C_low, "[B, h, w, 3, N]");
        const Array Aa = as_array<2>(op, "A", A, "[4D, N]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[4D]");
        const std::optional<Array> bias = as_optional<1>(op, "delta_bias", delta_bias, "[4D]");
        const std::optional<Array> za = as_optional<4>(op, "z", z, "[B, H, W, D]");
        ssm::SelectiveScan2dOptions o;
        o.D = view<1>(Da), o.delta_bias = view<1>(bias), o.delta_softplus = delta_softplus, o.z = view<4>(za);
        o.device = device_for(op, threads);
        Tensor<float, 4> out;
        {
          GilRelease release;
          out = ssm::multiscale_scan_2d(view<4>(uf), view<4>(df), view<5>(Bf), view<5>(Cf), view<4>(ul), view<4>(dl),
                                        view<5>(Bl), view<5>(Cl), view<2>(Aa), o);
        }
        return to_numpy(std::move(out));
      },
      py::arg("u_full"), py::arg("delta_full"), py::arg("B_full"), py::arg("C_full"), py::arg("u_low"),
      py::arg("delta_low"), py::arg("B_low"), py::arg("C_low"), py::arg("A"), py::kw_only(), py::arg("D") = py::none(),
      py::arg("delta_bias") = py::none(), py::arg("delta_softplus") = false, py::arg("z") = py::none(),
      py::arg("threads") = 1,
      "MSVMamba: a row-major scan at full resolution plus one joined [rev RM, CM, rev CM] scan at half resolution, "
      "bilinearly upsampled and added (shapes as in ssm/selective_scan_2d.hpp). Returns out [B, H, W, D].");

  m.def(
      "spatial_state_fusion",
      [](const py::object& h, const py::object& kernels, const py::object& alpha, const py::object& C,
         const std::vector<Index>& dilations, const py::object& D, const py::object& u, int threads) {
        const char* op = "spatial_state_fusion";
        const Array ha = as_array<5>(op, "h", h, "[B, H, W, D, N]"), ka = as_array<4>(op, "kernels", kernels, "[k, D, 3, 3]");
        const Array aa = as_array<1>(op, "alpha", alpha, "[k]"), Ca = as_array<4>(op, "C", C, "[B, H, W, N]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[D]"), ua = as_optional<4>(op, "u", u, "[B, H, W, D]");
        ssm::SpatialStateFusionOptions o;
        o.dilations = dilations, o.D = view<1>(Da), o.u = view<4>(ua), o.device = device_for(op, threads);
        Tensor<float, 4> out;
        {
          GilRelease release;
          out = ssm::spatial_state_fusion(view<5>(ha), view<4>(ka), view<1>(aa), view<4>(Ca), o);
        }
        return to_numpy(std::move(out));
      },
      py::arg("h"), py::arg("kernels"), py::arg("alpha"), py::arg("C"), py::kw_only(),
      py::arg("dilations") = std::vector<Index>{1, 3, 5}, py::arg("D") = py::none(), py::arg("u") = py::none(),
      py::arg("threads") = 1,
      "Spatial-Mamba's structure-aware state fusion: h [B, H, W, D, N] fused by dilated depthwise 3x3 kernels "
      "[k, D, 3, 3] weighted by alpha [k] (replicate padding), read out with C [B, H, W, N] (+ D·u). "
      "Returns [B, H, W, D].");

  m.def(
      "diagonal_ssm_step",
      [](const py::object& x, const py::object& state, const py::object& dA, const py::object& C, const py::object& D,
         int threads) {
        const char* op = "diagonal_ssm_step";
        const Array xa = as_array<2>(op, "x", x, "[B, D]"), sa = as_array<4>(op, "state", state, "[B, D, M, 2]");
        const Array dAa = as_array<3>(op, "dA", dA, "[Hp, M, 2]"), Ca = as_array<3>(op, "C", C, "[Hp, M, 2]");
        const std::optional<Array> Da = as_optional<1>(op, "D", D, "[Hp]");
        ssm::DiagonalSsmOptions o;
        o.D = view<1>(Da), o.device = device_for(op, threads);
        Tensor<float, 4> new_state = view<4>(sa);
        Tensor<float, 2> out(xa.shape(0), xa.ndim() == 2 ? xa.shape(1) : 0);
        {
          GilRelease release;
          ssm::diagonal_ssm_step(view<2>(xa), TensorView<float, 4>(new_state.data(), new_state.dimensions()), view<3>(dAa),
                                 view<3>(Ca), o, TensorView<float, 2>(out.data(), out.dimensions()));
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(new_state)));
      },
      py::arg("x"), py::arg("state"), py::arg("dA"), py::arg("C"), py::kw_only(), py::arg("D") = py::none(),
      py::arg("threads") = 1,
      "One decode step of diagonal_ssm: x [B, D], state [B, D, M, 2]. Returns (out [B, D], new_state).");
}

}  // namespace tokenmix::python
