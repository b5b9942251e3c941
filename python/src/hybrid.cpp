// Bindings of the hybrid family: the layers of hybrid/ (A2ssm, Mass, H3Layer, SeqBoatLayer) and the
// two whole models (blocks::A2MambaBackbone, blocks::MambaLM) as Python classes that keep the C++
// object (its packed weights and buffers). Conventions in common.hpp; in addition:
//   - weights come as a dict {name: array} named as the released PyTorch state dict, with '.' or '_'
//     (normalised '.' -> '_', the C++ field names); a missing, unknown or repeated key raises
//     ValueError naming it; keys ending in num_batches_tracked (BatchNorm's counter) are ignored;
//   - streaming state (H3Layer, SeqBoatLayer) is a dict of arrays named as the C++ state fields: it
//     goes in and a new one comes back (the caller's dict and arrays are never modified);
//   - one object runs one call at a time (calls from several Python threads are serialised).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "common.hpp"
#include "weights.hpp"
#include "tokenmix/blocks/a2mamba.hpp"
#include "tokenmix/blocks/mamba_lm.hpp"
#include "tokenmix/hybrid/a2ssm.hpp"
#include "tokenmix/hybrid/h3.hpp"
#include "tokenmix/hybrid/mass.hpp"
#include "tokenmix/hybrid/seqboat.hpp"

namespace tokenmix::python {

namespace {

// A C++ layer held by its Python object, with the lock that keeps its calls one at a time.
template <class Op>
struct Held {
  std::unique_ptr<Op> op;
  std::mutex mutex;
  int threads = 1;
};

template <int R>
ConstTensorView<float, R> cview(const Tensor<float, R>& t) {
  return ConstTensorView<float, R>(t.data(), t.dimensions());
}
template <int R>
py::array_t<float> copy_to_numpy(const Tensor<float, R>& t) {
  return to_numpy(Tensor<float, R>(t));
}

// Integer arrays (SeqBoat's state positions).
template <int R>
Tensor<Index, R> as_index_tensor(const char* op, const char* name, const py::handle& obj, const char* dims) {
  const py::array raw = py::array::ensure(obj);
  if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u'))
    fail(std::string(op) + ": " + name + " must be an integer array " + dims);
  if (raw.ndim() != R)
    fail(std::string(op) + ": " + name + " has " + std::to_string(raw.ndim()) + " dimensions, expected " +
         std::to_string(R) + ": " + dims);
  const auto a = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
  std::array<Index, R> d;
  for (int i = 0; i < R; ++i) d[std::size_t(i)] = static_cast<Index>(a.shape(i));
  Tensor<Index, R> t(d);
  for (Index i = 0; i < t.size(); ++i) t.data()[i] = static_cast<Index>(a.data()[i]);
  return t;
}
template <int R>
py::array_t<std::int64_t> index_to_numpy(const Tensor<Index, R>& t) {
  std::vector<py::ssize_t> shape(R);
  for (int i = 0; i < R; ++i) shape[std::size_t(i)] = t.dimension(i);
  py::array_t<std::int64_t> a(shape);
  for (Index i = 0; i < t.size(); ++i) a.mutable_data()[i] = static_cast<std::int64_t>(t.data()[i]);
  return a;
}

py::object state_item(const char* op, const py::handle& state, const char* key) {
  if (!py::isinstance<py::dict>(state))
    fail(std::string(op) + ": state must be a dict of arrays (as initial_state() returns), got " +
         std::string(py::str(py::type::of(state))));
  const py::dict d = py::reinterpret_borrow<py::dict>(state);
  if (!d.contains(key)) fail(std::string(op) + ": state has no '" + key + "'");
  return d[key];
}

// ---- A2SSM / MASS weights -------------------------------------------------------------------------

void add_a2ssm_weights(WeightTable& t, hybrid::A2ssmWeights& w, const std::string& prefix) {
  t.add(prefix + "conv2d_weight", w.conv2d_weight, "[C, 1, d_conv, d_conv]");
  t.add(prefix + "conv2d_bias", w.conv2d_bias, "[C]");
  t.add(prefix + "x_proj_weight", w.x_proj_weight, "[R + 2N, C]");
  t.add(prefix + "dt_projs_weight", w.dt_projs_weight, "[C, R]");
  t.add(prefix + "dt_projs_bias", w.dt_projs_bias, "[C]");
  t.add(prefix + "A_logs", w.A_logs, "[C, N]");
  t.add(prefix + "Ds", w.Ds, "[C]");
  t.add(prefix + "state_fusion_weight", w.state_fusion_weight, "[nh, nh, 1, 1]");
  t.add(prefix + "state_fusion_bias", w.state_fusion_bias, "[nh]");
}

hybrid::MassWeights mass_weights(const hybrid::MassConfig& c, const py::handle& weights) {
  hybrid::MassWeights w;
  Tensor<float, 3> rpb_1;
  WeightTable t("Mass");
  t.add("qkv_weight", w.qkv_weight, "[3C, C, 1, 1]");
  t.add("qkv_bias", w.qkv_bias, "[3C]");
  t.add("gate_0_weight", w.gate_0_weight, "[C, C, 1, 1]");
  t.add("gate_0_bias", w.gate_0_bias, "[C]");
  t.add("gate_1_weight", w.gate_1_weight, "[C]");
  t.add("gate_1_bias", w.gate_1_bias, "[C]");
  t.add("gate_1_running_mean", w.gate_1_running_mean, "[C]");
  t.add("gate_1_running_var", w.gate_1_running_var, "[C]");
  t.add("lepe_weight", w.lepe_weight, "[C, 1, 5, 5]");
  t.add("lepe_bias", w.lepe_bias, "[C]");
  t.add("norm_weight", w.norm_weight, "[C]");
  t.add("norm_bias", w.norm_bias, "[C]");
  t.add("proj_0_weight", w.proj_0_weight, "[C]");
  t.add("proj_0_bias", w.proj_0_bias, "[C]");
  t.add("proj_1_weight", w.proj_1_weight, "[C, C, 1, 1]");
  t.add("proj_1_bias", w.proj_1_bias, "[C]");
  if (c.use_rpb) {
    t.add("rpb", w.rpb, "[nh/2, 2K-1, 2K-1]"), t.alias("rpb_0", "rpb");
    t.add("rpb_1", rpb_1, "[nh/2, 2K-1, 2K-1] (tied to rpb.0)", false);
    if (c.global_mode) t.add("global_rpb", w.global_rpb, "[1, nh, H0*W0, H0*W0]"), t.alias("rpb_2", "global_rpb");
  }
  if (!c.global_mode) add_a2ssm_weights(t, w.ssm, "ssm_");
  t.load(weights);
  if (c.use_rpb && t.given("rpb_1") &&
      (rpb_1.dimensions() != w.rpb.dimensions() || !std::equal(rpb_1.data(), rpb_1.data() + rpb_1.size(), w.rpb.data())))
    fail("Mass: rpb.1 differs from rpb.0; the released model ties them (one Parameter listed twice)");
  return w;
}

// ---- H3 / SeqBoat state ---------------------------------------------------------------------------

py::dict h3_state_to_dict(const hybrid::H3State& s) {
  py::dict d;
  d["shift_state"] = copy_to_numpy(s.shift_state);
  d["diagonal_state"] = copy_to_numpy(s.diagonal_state);
  return d;
}
hybrid::H3State h3_state_from_dict(const char* op, const py::handle& state) {
  const Array shift = as_array<3>(op, "state['shift_state']", state_item(op, state, "shift_state"), "[B, D, N-1]");
  const Array diag = as_array<4>(op, "state['diagonal_state']", state_item(op, state, "diagonal_state"),
                                 "[B, Hh*hd*hd, M, 2]");
  return hybrid::H3State{Tensor<float, 3>(view<3>(shift)), Tensor<float, 4>(view<4>(diag))};
}

py::dict seqboat_state_to_dict(const hybrid::SeqBoatState& s) {
  py::dict d;
  d["ema_state"] = copy_to_numpy(s.ema_state);
  d["keys"] = copy_to_numpy(s.keys);
  d["values"] = copy_to_numpy(s.values);
  d["key_positions"] = index_to_numpy(s.key_positions);
  d["cached"] = index_to_numpy(s.cached);
  d["tokens"] = py::int_(s.tokens);
  return d;
}
hybrid::SeqBoatState seqboat_state_from_dict(const char* op, const py::handle& state) {
  hybrid::SeqBoatState s;
  s.ema_state = Tensor<float, 4>(view<4>(as_array<4>(op, "state['ema_state']", state_item(op, state, "ema_state"), "[B, D, N, 2]")));
  s.keys = Tensor<float, 3>(view<3>(as_array<3>(op, "state['keys']", state_item(op, state, "keys"), "[B, W, Z]")));
  s.values = Tensor<float, 3>(view<3>(as_array<3>(op, "state['values']", state_item(op, state, "values"), "[B, W, E]")));
  s.key_positions = as_index_tensor<2>(op, "state['key_positions']", state_item(op, state, "key_positions"), "[B, W]");
  s.cached = as_index_tensor<1>(op, "state['cached']", state_item(op, state, "cached"), "[B]");
  const py::object tokens = state_item(op, state, "tokens");
  if (!py::isinstance<py::int_>(tokens)) fail(std::string(op) + ": state['tokens'] must be an int");
  s.tokens = tokens.cast<Index>();
  if (s.tokens < 0) fail(std::string(op) + ": state['tokens'] must be >= 0");
  return s;
}

template <class E>
E parse_enum(const char* op, const char* name, const std::string& value,
             std::initializer_list<std::pair<const char*, E>> accepted) {
  std::string names;
  for (const auto& [n, e] : accepted) {
    if (value == n) return e;
    names += (names.empty() ? "'" : ", '") + std::string(n) + "'";
  }
  fail(std::string(op) + ": unknown " + name + " '" + value + "' (expected one of " + names + ")");
}

// ---- MambaLM cache as a dict ----------------------------------------------------------------------

py::dict mamba_cache_to_dict(const blocks::MambaLMCache& c) {
  py::list conv, ssm;
  for (const auto& layer : c.layers) conv.append(copy_to_numpy(layer.conv_state)), ssm.append(copy_to_numpy(layer.ssm_state));
  py::dict d;
  d["conv_states"] = conv, d["ssm_states"] = ssm, d["seen_tokens"] = py::int_(c.seen_tokens);
  return d;
}
blocks::MambaLMCache mamba_cache_from_dict(const char* op, const py::handle& cache) {
  const py::object conv = state_item(op, cache, "conv_states"), ssm = state_item(op, cache, "ssm_states");
  const py::object seen = state_item(op, cache, "seen_tokens");
  if (!py::isinstance<py::list>(conv) || !py::isinstance<py::list>(ssm) || py::len(conv) != py::len(ssm))
    fail(std::string(op) + ": cache['conv_states'] and cache['ssm_states'] must be lists of one array per layer");
  blocks::MambaLMCache c;
  const py::list cl = conv, sl = ssm;
  for (std::size_t i = 0; i < py::len(cl); ++i)
    c.layers.push_back(blocks::MambaMixerCache{
        Tensor<float, 3>(view<3>(as_array<3>(op, "cache['conv_states'][i]", cl[i], "[B, d_inner, d_conv-1]"))),
        Tensor<float, 3>(view<3>(as_array<3>(op, "cache['ssm_states'][i]", sl[i], "[B, d_inner, d_state]")))});
  c.seen_tokens = seen.cast<Index>();
  return c;
}

std::vector<std::int64_t> ids_vector(const char* op, const py::handle& obj) {
  const py::array raw = py::array::ensure(obj);
  if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u') || raw.ndim() != 1)
    fail(std::string(op) + ": prompt must be a 1-D sequence of token ids");
  const auto a = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
  return std::vector<std::int64_t>(a.data(), a.data() + a.size());
}

using MassHeld = Held<hybrid::Mass>;
using A2ssmHeld = Held<hybrid::A2ssm>;
using H3Held = Held<hybrid::H3Layer>;
using SeqBoatHeld = Held<hybrid::SeqBoatLayer>;
using A2MambaHeld = Held<blocks::A2MambaBackbone>;
struct MambaLMHeld {
  std::unique_ptr<blocks::MambaLM> lm;
  std::mutex mutex;
  const Eigen::ThreadPoolDevice* device = nullptr;
};

}  // namespace

void register_hybrid(py::module_& m) {
  // ---- A2ssm -------------------------------------------------------------------------------------
  py::class_<A2ssmHeld>(m, "A2ssm",
                        "A2Mamba's attention-augmented SSM (hybrid::A2ssm). Weights: the released A2SSM state dict "
                        "(conv2d.weight [C, 1, d_conv, d_conv], conv2d.bias [C], x_proj_weight [R + 2N, C], "
                        "dt_projs_weight [C, R], dt_projs_bias [C], A_logs [C, N], Ds [C], state_fusion.weight "
                        "[nh, nh, 1, 1], state_fusion.bias [nh]; '.' or '_').")
      .def(py::init([](const py::object& weights, Index channels, Index heads, Index kernel_size, Index d_state,
                       Index dt_rank, Index conv_kernel, int threads) {
             hybrid::A2ssmConfig c;
             c.channels = channels, c.heads = heads, c.kernel_size = kernel_size, c.d_state = d_state;
             c.dt_rank = dt_rank, c.conv_kernel = conv_kernel;
             hybrid::A2ssmWeights w;
             WeightTable t("A2ssm");
             add_a2ssm_weights(t, w, "");
             t.load(weights);
             auto held = std::make_unique<A2ssmHeld>();
             held->threads = threads;
             const Eigen::ThreadPoolDevice* device = device_for("A2ssm", threads);
             {
               GilRelease release;
               held->op = std::make_unique<hybrid::A2ssm>(c, w, device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("channels"), py::arg("heads"), py::arg("kernel_size"),
           py::arg("d_state") = 1, py::arg("dt_rank") = 0, py::arg("conv_kernel") = 5, py::arg("threads") = 1,
           "A2ssm(weights, *, channels, heads, kernel_size, d_state=1, dt_rank=0 (ceil(C/16)), conv_kernel=5, threads=1)")
      .def(
          "forward",
          [](A2ssmHeld& self, const py::object& x_ms, const py::object& attn1, const py::object& attn2,
             const std::array<Index, 2>& dilation) {
            const char* op = "A2ssm::forward";
            const Array x = as_array<4>(op, "x_ms", x_ms, "[B, H, W, C]");
            const Array a1 = as_array<5>(op, "attn1", attn1, "[B, H, W, nh/2, K*K]");
            const Array a2 = as_array<5>(op, "attn2", attn2, "[B, H, W, nh/2, K*K]");
            Tensor<float, 4> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.op->forward(view<4>(x), view<5>(a1), view<5>(a2), dilation);
            }
            return to_numpy(std::move(out));
          },
          py::arg("x_ms"), py::arg("attn1"), py::arg("attn2"), py::arg("dilation"),
          "y [B, H, W, C] = A2SSM(x_ms [B, H, W, C]) with MASS's post-softmax maps attn1 (heads [0, nh/2), "
          "dilation 1) and attn2 (heads [nh/2, nh), `dilation` (dh, dw)), both [B, H, W, nh/2, K*K].")
      .def_property_readonly("threads", [](const A2ssmHeld& self) { return self.threads; });

  // ---- Mass --------------------------------------------------------------------------------------
  py::class_<MassHeld>(m, "Mass",
                       "A2Mamba's MASS token mixer (hybrid::Mass, the released class Attention). Weights: its state "
                       "dict (qkv.*, gate.0.*, gate.1.* (BatchNorm), lepe.*, norm.*, proj.0.*, proj.1.*, rpb.0 "
                       "(rpb.1 optional, must equal rpb.0), rpb.2 in global mode, ssm.* (A2SSM) otherwise; '.' or "
                       "'_'; rpb / global_rpb accepted for rpb.0 / rpb.2).")
      .def(py::init([](const py::object& weights, Index channels, Index heads, Index kernel_size, Index window_dilation,
                       bool global_mode, const std::array<Index, 2>& global_grid, bool use_rpb, Index d_state,
                       Index dt_rank, Index conv_kernel, int threads) {
             hybrid::MassConfig c;
             c.channels = channels, c.heads = heads, c.kernel_size = kernel_size, c.window_dilation = window_dilation;
             c.global_mode = global_mode, c.global_grid = global_grid, c.use_rpb = use_rpb;
             c.ssm.d_state = d_state, c.ssm.dt_rank = dt_rank, c.ssm.conv_kernel = conv_kernel;
             const hybrid::MassWeights w = mass_weights(c, weights);
             auto held = std::make_unique<MassHeld>();
             held->threads = threads;
             const Eigen::ThreadPoolDevice* device = device_for("Mass", threads);
             {
               GilRelease release;
               held->op = std::make_unique<hybrid::Mass>(c, w, device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("channels"), py::arg("heads"), py::arg("kernel_size"),
           py::arg("window_dilation") = 1, py::arg("global_mode") = false,
           py::arg("global_grid") = std::array<Index, 2>{0, 0}, py::arg("use_rpb") = true, py::arg("d_state") = 1,
           py::arg("dt_rank") = 0, py::arg("conv_kernel") = 5, py::arg("threads") = 1,
           "Mass(weights, *, channels, heads, kernel_size, window_dilation=1, global_mode=False, global_grid=(H0, W0) "
           "(global mode: the grid of rpb.2), use_rpb=True, d_state=1, dt_rank=0, conv_kernel=5 (A2SSM), threads=1)")
      .def(
          "forward",
          [](MassHeld& self, const py::object& x) {
            const Array xa = as_array<4>("Mass::forward", "x", x, "[B, H, W, C]");
            Tensor<float, 4> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.op->forward(view<4>(xa));
            }
            return to_numpy(std::move(out));
          },
          py::arg("x"),
          "y [B, H, W, C] = MASS(x [B, H, W, C]), x the normalised block input (H, W >= kernel_size * window_dilation).")
      .def_property_readonly(
          "attn1",
          [](MassHeld& self) {
            const std::lock_guard<std::mutex> lock(self.mutex);
            return copy_to_numpy(self.op->attn1());
          },
          "The last forward's post-softmax map of the first branch [B, H, W, nh/2, K*K] (a copy).")
      .def_property_readonly(
          "attn2",
          [](MassHeld& self) {
            const std::lock_guard<std::mutex> lock(self.mutex);
            return copy_to_numpy(self.op->attn2());
          },
          "The last forward's post-softmax map of the second branch [B, H, W, nh/2, K*K] (a copy).")
      .def_property_readonly("threads", [](const MassHeld& self) { return self.threads; });
  m.def(
      "mass_dilation",
      [](Index H, Index W, Index K) {
        const std::array<Index, 2> d = hybrid::mass_dilation(H, W, K);
        return py::make_tuple(d[0], d[1]);
      },
      py::arg("H"), py::arg("W"), py::arg("K"), "MASS's adaptive dilation of the second branch: (min(H // K, K), min(W // K, K)).");

  // ---- H3Layer -----------------------------------------------------------------------------------
  py::class_<H3Held>(m, "H3Layer",
                     "The H3 layer (hybrid::H3Layer). Weights: H3's state dict (q_proj / k_proj / v_proj / "
                     "output_linear .weight [D, D] .bias [D]; ssm_k_kernel.kernel.B / .C [D, N] (C also [1, D, N]); "
                     "ssm_k_D [D]; kernel.kernel.log_dt [Hh], .inv_A_real / .A_imag [Hh, M], .B / .C [Hh, M, 2] (C "
                     "also [1, Hh, M, 2]); D [Hh]; '.' or '_', with or without the inner 'kernel.'). State: a dict "
                     "{'shift_state': [B, D, N-1], 'diagonal_state': [B, Hh*hd*hd, M, 2]}.")
      .def(py::init([](const py::object& weights, Index d_model, Index d_state, Index head_dim, int threads) {
             const hybrid::H3Config c{d_model, d_state, head_dim};
             hybrid::H3Weights w;
             WeightTable t("H3Layer");
             for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
               t.add(std::string(p) + "_weight", p[0] == 'q' ? w.q_proj_weight : p[0] == 'k' ? w.k_proj_weight : w.v_proj_weight, "[D, D]");
               t.add(std::string(p) + "_bias", p[0] == 'q' ? w.q_proj_bias : p[0] == 'k' ? w.k_proj_bias : w.v_proj_bias, "[D]");
             }
             t.add("ssm_k_kernel_B", w.ssm_k_kernel_B, "[D, N]", true, true);
             t.add("ssm_k_kernel_C", w.ssm_k_kernel_C, "[D, N]", true, true);
             t.add("ssm_k_D", w.ssm_k_D, "[D]");
             t.add("kernel_log_dt", w.kernel_log_dt, "[Hh]");
             t.add("kernel_inv_A_real", w.kernel_inv_A_real, "[Hh, M]");
             t.add("kernel_A_imag", w.kernel_A_imag, "[Hh, M]");
             t.add("kernel_B", w.kernel_B, "[Hh, M, 2]", true, true);
             t.add("kernel_C", w.kernel_C, "[Hh, M, 2]", true, true);
             t.add("D", w.D, "[Hh]");
             t.add("output_linear_weight", w.output_linear_weight, "[D, D]");
             t.add("output_linear_bias", w.output_linear_bias, "[D]");
             t.alias("ssm_k_kernel_kernel_B", "ssm_k_kernel_B"), t.alias("ssm_k_kernel_kernel_C", "ssm_k_kernel_C");
             for (const char* f : {"log_dt", "inv_A_real", "A_imag", "B", "C"})
               t.alias(std::string("kernel_kernel_") + f, std::string("kernel_") + f);
             t.load(weights);
             auto held = std::make_unique<H3Held>();
             held->threads = threads;
             const Eigen::ThreadPoolDevice* device = device_for("H3Layer", threads);
             {
               GilRelease release;
               held->op = std::make_unique<hybrid::H3Layer>(c, w, device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("d_model"), py::arg("d_state") = 64, py::arg("head_dim") = 1,
           py::arg("threads") = 1, "H3Layer(weights, *, d_model, d_state=64, head_dim=1, threads=1)")
      .def(
          "initial_state",
          [](const H3Held& self, Index batch) {
            if (batch < 1) fail("H3Layer.initial_state: batch must be >= 1, got " + std::to_string(batch));
            return h3_state_to_dict(hybrid::make_h3_state(self.op->config(), batch));
          },
          py::arg("batch"), "The zero state of `batch` sequences: {'shift_state', 'diagonal_state'}.")
      .def(
          "forward",
          [](H3Held& self, const py::object& u, const py::object& state) -> py::object {
            const char* op = "H3Layer::forward";
            const Array ua = as_array<3>(op, "u", u, "[B, L, D]");
            std::optional<hybrid::H3State> s;
            if (!state.is_none()) s = h3_state_from_dict(op, state);
            Tensor<float, 3> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.op->forward(view<3>(ua), s ? &*s : nullptr);
            }
            if (!s) return to_numpy(std::move(out));
            return py::make_tuple(to_numpy(std::move(out)), h3_state_to_dict(*s));
          },
          py::arg("u"), py::kw_only(), py::arg("state") = py::none(),
          "y [B, L, D] = H3(u [B, L, D]) from zero state; with state= (a dict as initial_state() returns), "
          "continues from it and returns (y, new_state) (the given state is not modified).")
      .def(
          "step",
          [](H3Held& self, const py::object& u, const py::object& state) {
            const char* op = "H3Layer::step";
            const Array ua = as_array<2>(op, "u", u, "[B, D]");
            hybrid::H3State s = h3_state_from_dict(op, state);
            Tensor<float, 2> out(ua.shape(0), self.op->config().d_model);
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              self.op->step(view<2>(ua), s, TensorView<float, 2>(out.data(), out.dimensions()));
            }
            return py::make_tuple(to_numpy(std::move(out)), h3_state_to_dict(s));
          },
          py::arg("u"), py::arg("state"),
          "One token per sequence: (y [B, D], new_state) for u [B, D] after the tokens `state` has seen.")
      .def_property_readonly("threads", [](const H3Held& self) { return self.threads; });

  // ---- SeqBoatLayer ------------------------------------------------------------------------------
  py::class_<SeqBoatHeld>(
      m, "SeqBoatLayer",
      "The SeqBoat layer (hybrid::SeqBoatLayer, SeqBoatUnit in local mode, inference). Weights: its state dict "
      "(norm.norm.{weight, bias, scalar, running_mean, running_var} as the norm needs, move.{delta, alpha, beta, gamma, "
      "omega}, q_router_temp, hx_proj.*, mx_proj.*, gamma, beta, h_proj.*, rel_pos_bias.rel_pos_bias ('simple' / "
      "'local'); '.' or '_'; norm_* / rel_pos_bias accepted too). Streaming state (causal layers): a dict "
      "{'ema_state' [B, D, N, 2], 'keys' [B, W, Z], 'values' [B, W, E], 'key_positions' int64 [B, W], "
      "'cached' int64 [B], 'tokens' int}.")
      .def(py::init([](const py::object& weights, Index d_model, Index zdim, Index hdim, Index ndim, Index window,
                       Index max_positions, bool bidirectional, const std::string& attention, const std::string& position,
                       const std::string& norm, bool prenorm, float norm_eps, float act_bias, int threads) {
             const char* op = "SeqBoatLayer";
             hybrid::SeqBoatConfig c;
             c.d_model = d_model, c.zdim = zdim, c.hdim = hdim, c.ndim = ndim, c.window = window;
             c.max_positions = max_positions, c.bidirectional = bidirectional, c.prenorm = prenorm;
             c.norm_eps = norm_eps, c.act_bias = act_bias;
             c.attention = parse_enum<attention::LocalAttentionKind>(
                 op, "attention", attention,
                 {{"softmax", attention::LocalAttentionKind::softmax}, {"relu_squared", attention::LocalAttentionKind::relu_squared}});
             c.position = parse_enum<hybrid::SeqBoatPosition>(
                 op, "position", position,
                 {{"simple", hybrid::SeqBoatPosition::simple}, {"local", hybrid::SeqBoatPosition::local},
                  {"rotary", hybrid::SeqBoatPosition::rotary}});
             c.norm = parse_enum<hybrid::SeqBoatNorm>(
                 op, "norm", norm,
                 {{"layer_norm", hybrid::SeqBoatNorm::layer_norm}, {"rms_norm", hybrid::SeqBoatNorm::rms_norm},
                  {"scale_norm", hybrid::SeqBoatNorm::scale_norm}, {"batch_norm", hybrid::SeqBoatNorm::batch_norm}});
             hybrid::SeqBoatWeights w;
             WeightTable t(op);
             if (c.norm == hybrid::SeqBoatNorm::scale_norm) {
               t.add("norm_scalar", w.norm_scalar, "[1]");
             } else {
               t.add("norm_weight", w.norm_weight, "[D]");
               if (c.norm != hybrid::SeqBoatNorm::rms_norm) t.add("norm_bias", w.norm_bias, "[D]");
               if (c.norm == hybrid::SeqBoatNorm::batch_norm) {
                 t.add("norm_running_mean", w.norm_running_mean, "[D]");
                 t.add("norm_running_var", w.norm_running_var, "[D]");
               }
             }
             for (const char* f : {"weight", "bias", "scalar", "running_mean", "running_var"})
               t.alias(std::string("norm_norm_") + f, std::string("norm_") + f);
             t.add("move_delta", w.move_delta, "[D', N, 1]");
             t.add("move_alpha", w.move_alpha, "[D', N, 1]");
             t.add("move_beta", w.move_beta, "[D', N, 1]");
             t.add("move_gamma", w.move_gamma, "[D', N]");
             t.add("move_omega", w.move_omega, "[D]");
             t.add("q_router_temp", w.q_router_temp, "[1]");
             t.add("hx_proj_weight", w.hx_proj_weight, "[2 + D, D]");
             t.add("hx_proj_bias", w.hx_proj_bias, "[2 + D]");
             t.add("mx_proj_weight", w.mx_proj_weight, "[Z + 2E, D]");
             t.add("mx_proj_bias", w.mx_proj_bias, "[Z + 2E]");
             t.add("gamma", w.gamma, "[2, Z]");
             t.add("beta", w.beta, "[2, Z]");
             t.add("h_proj_weight", w.h_proj_weight, "[D, E]");
             t.add("h_proj_bias", w.h_proj_bias, "[D]");
             if (c.position != hybrid::SeqBoatPosition::rotary) {
               t.add("rel_pos_bias", w.rel_pos_bias, "[2M-1] ('simple') or [6W-1] ('local')");
               t.alias("rel_pos_bias_rel_pos_bias", "rel_pos_bias");
             }
             t.load(weights);
             auto held = std::make_unique<SeqBoatHeld>();
             held->threads = threads;
             const Eigen::ThreadPoolDevice* device = device_for(op, threads);
             {
               GilRelease release;
               held->op = std::make_unique<hybrid::SeqBoatLayer>(c, w, device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("d_model"), py::arg("zdim"), py::arg("hdim"), py::arg("ndim") = 16,
           py::arg("window"), py::arg("max_positions") = 1024, py::arg("bidirectional") = false,
           py::arg("attention") = "softmax", py::arg("position") = "simple", py::arg("norm") = "layer_norm",
           py::arg("prenorm") = true, py::arg("norm_eps") = 1e-5f, py::arg("act_bias") = 0.0f, py::arg("threads") = 1,
           "SeqBoatLayer(weights, *, d_model, zdim, hdim, ndim=16, window, max_positions=1024, bidirectional=False, "
           "attention='softmax' | 'relu_squared', position='simple' | 'local' | 'rotary', norm='layer_norm' | "
           "'rms_norm' | 'scale_norm' | 'batch_norm', prenorm=True, norm_eps=1e-5, act_bias=0.0, threads=1)")
      .def(
          "initial_state",
          [](const SeqBoatHeld& self, Index batch) {
            if (batch < 1) fail("SeqBoatLayer.initial_state: batch must be >= 1, got " + std::to_string(batch));
            return seqboat_state_to_dict(hybrid::make_seqboat_state(self.op->config(), batch));
          },
          py::arg("batch"), "The empty streaming state of `batch` sequences (causal layers).")
      .def(
          "forward",
          [](SeqBoatHeld& self, const py::object& x, const py::object& state) -> py::object {
            const char* op = "SeqBoatLayer::forward";
            const Array xa = as_array<3>(op, "x", x, "[B, L, D]");
            std::optional<hybrid::SeqBoatState> s;
            if (!state.is_none()) s = seqboat_state_from_dict(op, state);
            Tensor<float, 3> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.op->forward(view<3>(xa), s ? &*s : nullptr);
            }
            if (!s) return to_numpy(std::move(out));
            return py::make_tuple(to_numpy(std::move(out)), seqboat_state_to_dict(*s));
          },
          py::arg("x"), py::kw_only(), py::arg("state") = py::none(),
          "y [B, L, D] = SeqBoat(x [B, L, D]); with state= (causal layers; a dict as initial_state() returns), "
          "continues from it and returns (y, new_state) (the given state is not modified).")
      .def(
          "step",
          [](SeqBoatHeld& self, const py::object& x, const py::object& state) {
            const char* op = "SeqBoatLayer::step";
            const Array xa = as_array<2>(op, "x", x, "[B, D]");
            hybrid::SeqBoatState s = seqboat_state_from_dict(op, state);
            Tensor<float, 2> out(xa.shape(0), self.op->config().d_model);
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              self.op->step(view<2>(xa), s, TensorView<float, 2>(out.data(), out.dimensions()));
            }
            return py::make_tuple(to_numpy(std::move(out)), seqboat_state_to_dict(s));
          },
          py::arg("x"), py::arg("state"), "One token per sequence (causal layers): (y [B, D], new_state) for x [B, D].")
      .def_property_readonly(
          "activated",
          [](SeqBoatHeld& self) {
            const std::lock_guard<std::mutex> lock(self.mutex);
            return std::vector<Index>(self.op->activated());
          },
          "How many tokens of each sequence the last call activated.")
      .def_property_readonly("threads", [](const SeqBoatHeld& self) { return self.threads; });

  // ---- A2MambaBackbone ---------------------------------------------------------------------------
  const blocks::A2MambaConfig nano = blocks::A2MambaConfig::nano();
  py::class_<A2MambaHeld>(m, "A2MambaBackbone",
                          "A2Mamba for images (blocks::A2MambaBackbone), from a safetensors checkpoint with the "
                          "released state dict's names or a random one (random_seed=). The configuration keywords "
                          "default to A2Mamba-Nano.")
      .def(py::init([](const py::object& path, const py::object& random_seed, Index image_size, Index in_chans,
                       const std::array<Index, 4>& dims, const std::array<Index, 4>& depths,
                       const std::array<Index, 4>& heads, const std::array<Index, 4>& kernel_size,
                       const std::array<double, 4>& mlp_ratios, Index projection, Index num_classes, int threads) {
             const char* op = "A2MambaBackbone";
             if (path.is_none() == random_seed.is_none())
               fail(std::string(op) + ": give exactly one of path (a safetensors checkpoint) and random_seed");
             blocks::A2MambaConfig c;
             c.image_size = image_size, c.in_chans = in_chans, c.dims = dims, c.depths = depths, c.heads = heads;
             c.kernel_size = kernel_size, c.mlp_ratios = mlp_ratios, c.projection = projection, c.num_classes = num_classes;
             std::string file;
             std::uint64_t seed = 0;
             if (!path.is_none()) file = py::module_::import("os").attr("fspath")(path).cast<std::string>();
             else seed = random_seed.cast<std::uint64_t>();
             auto held = std::make_unique<A2MambaHeld>();
             held->threads = threads;
             const Eigen::ThreadPoolDevice* device = device_for(op, threads);
             {
               GilRelease release;
               const io::SafetensorsFile f = file.empty() ? blocks::a2mamba_random_checkpoint(c, seed) : io::SafetensorsFile(file);
               held->op = std::make_unique<blocks::A2MambaBackbone>(c, f, device);
             }
             return held;
           }),
           py::arg("path") = py::none(), py::kw_only(), py::arg("random_seed") = py::none(),
           py::arg("image_size") = nano.image_size, py::arg("in_chans") = nano.in_chans, py::arg("dims") = nano.dims,
           py::arg("depths") = nano.depths, py::arg("heads") = nano.heads, py::arg("kernel_size") = nano.kernel_size,
           py::arg("mlp_ratios") = nano.mlp_ratios, py::arg("projection") = nano.projection,
           py::arg("num_classes") = nano.num_classes, py::arg("threads") = 1,
           "A2MambaBackbone(path=None, *, random_seed=None, image_size=224, in_chans=3, dims=(32, 64, 128, 192), "
           "depths=(2, 2, 8, 2), heads=(2, 2, 4, 8), kernel_size=(11, 9, 7, 7), mlp_ratios=(4, 4, 3, 3), "
           "projection=1024, num_classes=1000, threads=1): exactly one of path / random_seed.")
      .def(
          "features",
          [](A2MambaHeld& self, const py::object& image) {
            const Array a = as_array<4>("A2MambaBackbone::features", "image", image, "[B, H, W, in_chans]");
            std::array<Tensor<float, 4>, 4> f;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              f = self.op->features(view<4>(a));
            }
            py::list out;
            for (auto& t : f) out.append(to_numpy(std::move(t)));
            return out;
          },
          py::arg("image"),
          "Each stage's output for image [B, H, W, in_chans] (channels last): a list of 4 arrays "
          "[B, H/4, W/4, dims[0]] ... [B, H/32, W/32, dims[3]].")
      .def(
          "logits",
          [](A2MambaHeld& self, const py::object& image) {
            const Array a = as_array<4>("A2MambaBackbone::logits", "image", image, "[B, H, W, in_chans]");
            Tensor<float, 2> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.op->logits(view<4>(a));
            }
            return to_numpy(std::move(out));
          },
          py::arg("image"), "Class logits [B, num_classes] for image [B, H, W, in_chans].")
      .def_property_readonly("threads", [](const A2MambaHeld& self) { return self.threads; });

  // ---- MambaLM -----------------------------------------------------------------------------------
  py::class_<MambaLMHeld>(m, "MambaLM",
                          "transformers' MambaForCausalLM / Mamba2ForCausalLM (blocks::MambaLM), loaded with "
                          "MambaLM.load(dir). Cache: a dict {'conv_states': [per layer [B, d_inner, d_conv-1]], "
                          "'ssm_states': [per layer state array], 'seen_tokens': int}.")
      .def_static(
          "load",
          [](const py::object& dir, int threads) {
            const std::string d = py::module_::import("os").attr("fspath")(dir).cast<std::string>();
            auto held = std::make_unique<MambaLMHeld>();
            held->device = device_for("MambaLM::load", threads);
            {
              GilRelease release;
              held->lm = std::make_unique<blocks::MambaLM>(blocks::MambaLM::load(d, held->device));
            }
            return held;
          },
          py::arg("dir"), py::kw_only(), py::arg("threads") = 1,
          "Loads a save_pretrained directory (config.json + model.safetensors or a sharded index).")
      .def_property_readonly("vocab_size", [](const MambaLMHeld& self) { return self.lm->config().vocab_size; })
      .def_property_readonly("num_hidden_layers", [](const MambaLMHeld& self) { return self.lm->config().num_hidden_layers; })
      .def(
          "new_cache",
          [](const MambaLMHeld& self, Index batch) {
            if (batch < 1) fail("MambaLM.new_cache: batch must be >= 1, got " + std::to_string(batch));
            return mamba_cache_to_dict(self.lm->new_cache(batch));
          },
          py::arg("batch"), "The zero cache of `batch` sequences.")
      .def(
          "forward",
          [](MambaLMHeld& self, const py::object& ids, const py::object& cache, const std::string& logits_for) -> py::object {
            const char* op = "MambaLM::forward";
            const py::array raw = py::array::ensure(ids);
            if (!raw || (raw.dtype().kind() != 'i' && raw.dtype().kind() != 'u') || raw.ndim() != 2)
              fail(std::string(op) + ": ids must be an integer array [B, L]");
            const auto a = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(raw);
            const blocks::LogitsFor which = parse_enum<blocks::LogitsFor>(
                op, "logits_for", logits_for,
                {{"all_tokens", blocks::LogitsFor::all_tokens}, {"last_token", blocks::LogitsFor::last_token}});
            std::optional<blocks::MambaLMCache> c;
            if (!cache.is_none()) c = mamba_cache_from_dict(op, cache);
            Tensor<float, 3> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.lm->forward(ConstTensorView<std::int64_t, 2>(a.data(), a.shape(0), a.shape(1)), c ? &*c : nullptr,
                                     which, self.device);
            }
            if (!c) return to_numpy(std::move(out));
            return py::make_tuple(to_numpy(std::move(out)), mamba_cache_to_dict(*c));
          },
          py::arg("ids"), py::kw_only(), py::arg("cache") = py::none(), py::arg("logits_for") = "all_tokens",
          "Logits [B, L, V] ('all_tokens') or [B, 1, V] ('last_token') for token ids [B, L]; with cache=, continues "
          "from it and returns (logits, new_cache).")
      .def(
          "step",
          [](MambaLMHeld& self, const py::object& ids, const py::object& cache) {
            const char* op = "MambaLM::step";
            const std::vector<std::int64_t> v = ids_vector(op, ids);
            blocks::MambaLMCache c = mamba_cache_from_dict(op, cache);
            Tensor<float, 2> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.lm->step(v.data(), static_cast<Index>(v.size()), c, self.device);
            }
            return py::make_tuple(to_numpy(std::move(out)), mamba_cache_to_dict(c));
          },
          py::arg("ids"), py::arg("cache"), "One decode step: ids [B] -> (logits [B, V], new_cache).")
      .def(
          "generate_greedy",
          [](MambaLMHeld& self, const py::object& prompt, Index max_new_tokens, bool stop_at_eos) {
            const std::vector<std::int64_t> p = ids_vector("MambaLM::generate_greedy", prompt);
            std::vector<std::int64_t> out;
            {
              GilRelease release;
              const std::lock_guard<std::mutex> lock(self.mutex);
              out = self.lm->generate_greedy(p, max_new_tokens, self.device, stop_at_eos);
            }
            return out;
          },
          py::arg("prompt"), py::arg("max_new_tokens"), py::kw_only(), py::arg("stop_at_eos") = true,
          "Greedy decoding of one sequence: the new ids (a list) after prompt (token ids [L]).");
}

}  // namespace tokenmix::python
