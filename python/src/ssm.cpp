// Bindings of the ssm family: the selective scan (+ states, decode step), causal conv1d (+ update).
// Names, argument names and shapes as the C++ ops (ssm/*.hpp); conventions in common.hpp.

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
}

}  // namespace tokenmix::python
