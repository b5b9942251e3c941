// Bindings of the ssm family: the selective scan (+ states, decode step), causal conv1d (+ update),
// Mamba-2 SSD (+ decode step), S4D's diagonal SSM and its discretisation.
// Names, argument names and shapes as the C++ ops (ssm/*.hpp); conventions in common.hpp.

#include <limits>
#include <string>

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
}

}  // namespace tokenmix::python
