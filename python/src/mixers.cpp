// Bindings of the Mamba mixers (blocks::MambaMixer, blocks::Mamba2Mixer) as classes that keep the C++
// object (its packed projections and a reusable scratch). Conventions in common.hpp; in addition
// (as in hybrid.cpp):
//   - the configuration comes as keywords named as the C++ config fields; the weights as a dict
//     {name: array} named as transformers' MambaMixer / Mamba2Mixer state dict ('.' or '_', e.g.
//     'in_proj.weight' or 'in_proj_weight'); a missing, unknown or repeated key raises ValueError
//     naming it, and so does a weight whose shape disagrees with the configuration;
//   - the decode cache is a dict {'conv_state': [B, C, d_conv-1], 'ssm_state': [B, I, d_state]}: it
//     goes in and a new one comes back (the caller's dict and arrays are never modified);
//   - one object runs one call at a time (calls from several Python threads are serialised).

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "common.hpp"
#include "weights.hpp"
#include "tokenmix/blocks/mamba2_mixer.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"

namespace tokenmix::python {

namespace {

// A C++ mixer held by its Python object, with its device, scratch and the lock that keeps its
// calls one at a time.
template <class Mixer>
struct Held {
  std::unique_ptr<Mixer> mixer;
  std::mutex mutex;
  blocks::MambaMixerScratch scratch;
  const Eigen::ThreadPoolDevice* device = nullptr;
  int threads = 1;
};
using MambaHeld = Held<blocks::MambaMixer>;
using Mamba2Held = Held<blocks::Mamba2Mixer>;

py::dict cache_to_dict(blocks::MambaMixerCache&& c) {
  py::dict d;
  d["conv_state"] = to_numpy(std::move(c.conv_state));
  d["ssm_state"] = to_numpy(std::move(c.ssm_state));
  return d;
}

py::object cache_item(const char* op, const py::handle& cache, const char* key) {
  if (!py::isinstance<py::dict>(cache))
    fail(std::string(op) + ": cache must be a dict {'conv_state', 'ssm_state'} (as initial_cache() returns), got " +
         std::string(py::str(py::type::of(cache))));
  const py::dict d = py::reinterpret_borrow<py::dict>(cache);
  if (!d.contains(key)) fail(std::string(op) + ": cache has no '" + key + "'");
  return d[key];
}

// A copy of the caller's cache (its shapes are checked by the C++ op).
blocks::MambaMixerCache cache_from_dict(const char* op, const py::handle& cache, const char* conv_dims,
                                        const char* ssm_dims) {
  if (py::isinstance<py::dict>(cache))
    for (const auto& item : py::reinterpret_borrow<py::dict>(cache)) {
      const std::string k = py::str(item.first);
      if (k != "conv_state" && k != "ssm_state")
        fail(std::string(op) + ": unknown cache entry '" + k + "' (expected conv_state, ssm_state)");
    }
  const Array conv = as_array<3>(op, "cache['conv_state']", cache_item(op, cache, "conv_state"), conv_dims);
  const Array ssm = as_array<3>(op, "cache['ssm_state']", cache_item(op, cache, "ssm_state"), ssm_dims);
  return blocks::MambaMixerCache{Tensor<float, 3>(view<3>(conv)), Tensor<float, 3>(view<3>(ssm))};
}

// Shared by both classes: forward / step / initial_cache on a held mixer.
template <class H>
py::object mixer_forward(H& self, const char* op, const py::object& x, const py::object& cache, const char* conv_dims,
                         const char* ssm_dims) {
  const Array xa = as_array<3>(op, "x", x, "[B, L, d_model]");
  std::optional<blocks::MambaMixerCache> c;
  if (!cache.is_none()) c = cache_from_dict(op, cache, conv_dims, ssm_dims);
  Tensor<float, 3> out;
  {
    GilRelease release;
    const std::lock_guard<std::mutex> lock(self.mutex);
    out = self.mixer->forward(view<3>(xa), c ? &*c : nullptr, self.device, &self.scratch);
  }
  if (!c) return to_numpy(std::move(out));
  return py::make_tuple(to_numpy(std::move(out)), cache_to_dict(std::move(*c)));
}

template <class H>
py::tuple mixer_step(H& self, const char* op, const py::object& token, const py::object& cache, const char* conv_dims,
                     const char* ssm_dims) {
  const Array ta = as_array<2>(op, "token", token, "[B, d_model]");
  blocks::MambaMixerCache c = cache_from_dict(op, cache, conv_dims, ssm_dims);
  Tensor<float, 2> out;
  {
    GilRelease release;
    const std::lock_guard<std::mutex> lock(self.mutex);
    out = self.mixer->step(view<2>(ta), c, self.device, &self.scratch);
  }
  return py::make_tuple(to_numpy(std::move(out)), cache_to_dict(std::move(c)));
}

// A weight's shape against the configuration keywords (the C++ constructors check the weights
// against each other; this names the keyword that disagrees).
template <int R>
void check_weight(const char* op, const char* name, const Tensor<float, R>& t, const NamedShape<R>& expected) {
  tokenmix::detail::check_shape(op, name, t, expected, " (from the configuration keywords)");
}

constexpr const char* kMambaConv = "[B, d_inner, d_conv-1]";
constexpr const char* kMambaSsm = "[B, d_inner, d_state]";
constexpr const char* kMamba2Conv = "[B, conv_dim, d_conv-1]";
constexpr const char* kMamba2Ssm = "[B, heads*head_dim, d_state]";

}  // namespace

void register_mixers(py::module_& m) {
  // ---- MambaMixer --------------------------------------------------------------------------------
  py::class_<MambaHeld>(
      m, "MambaMixer",
      "The Mamba (S6) token mixer of transformers' MambaMixer (blocks::MambaMixer). Weights: its state dict "
      "(in_proj.weight [2*d_inner, d_model], in_proj.bias [2*d_inner] (use_bias), conv1d.weight [d_inner, 1, d_conv], "
      "conv1d.bias [d_inner] (use_conv_bias), x_proj.weight [dt_rank + 2*d_state, d_inner], dt_proj.weight "
      "[d_inner, dt_rank], dt_proj.bias [d_inner], A_log [d_inner, d_state], D [d_inner], out_proj.weight "
      "[d_model, d_inner], out_proj.bias [d_model] (use_bias); '.' or '_'). Cache: a dict {'conv_state': "
      "[B, d_inner, d_conv-1] (the last d_conv-1 pre-conv inputs, oldest first), 'ssm_state': "
      "[B, d_inner, d_state]}.")
      .def(py::init([](const py::object& weights, Index d_model, Index d_inner, Index d_state, Index d_conv,
                       const py::object& dt_rank, bool use_bias, bool use_conv_bias, int threads) {
             const char* op = "MambaMixer";
             blocks::MambaMixerConfig c;
             c.d_model = d_model, c.d_inner = d_inner, c.d_state = d_state, c.d_conv = d_conv;
             c.dt_rank = dt_rank.is_none() ? (d_model + 15) / 16 : dt_rank.cast<Index>();  // "auto"
             c.use_bias = use_bias, c.use_conv_bias = use_conv_bias;
             blocks::detail::check_mamba_mixer_config(op, c);
             const Index I = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank, Dm = c.d_model;
             blocks::MambaMixerWeights w;
             WeightTable t(op);
             t.add("in_proj_weight", w.in_proj_weight, "[2*d_inner, d_model]");
             if (use_bias) t.add("in_proj_bias", w.in_proj_bias, "[2*d_inner]");
             t.add("conv1d_weight", w.conv1d_weight, "[d_inner, 1, d_conv]");
             if (use_conv_bias) t.add("conv1d_bias", w.conv1d_bias, "[d_inner]");
             t.add("x_proj_weight", w.x_proj_weight, "[dt_rank + 2*d_state, d_inner]");
             t.add("dt_proj_weight", w.dt_proj_weight, "[d_inner, dt_rank]");
             t.add("dt_proj_bias", w.dt_proj_bias, "[d_inner]");
             t.add("A_log", w.A_log, "[d_inner, d_state]");
             t.add("D", w.D, "[d_inner]");
             t.add("out_proj_weight", w.out_proj_weight, "[d_model, d_inner]");
             if (use_bias) t.add("out_proj_bias", w.out_proj_bias, "[d_model]");
             t.load(weights);
             check_weight(op, "in_proj_weight", w.in_proj_weight, NamedShape<2>{{"2*d_inner", "d_model"}, {{2 * I, Dm}}});
             check_weight(op, "conv1d_weight", w.conv1d_weight, NamedShape<3>{{"d_inner", "1", "d_conv"}, {{I, 1, K}}});
             check_weight(op, "x_proj_weight", w.x_proj_weight,
                          NamedShape<2>{{"dt_rank+2*d_state", "d_inner"}, {{R + 2 * N, I}}});
             check_weight(op, "dt_proj_weight", w.dt_proj_weight, NamedShape<2>{{"d_inner", "dt_rank"}, {{I, R}}});
             check_weight(op, "A_log", w.A_log, NamedShape<2>{{"d_inner", "d_state"}, {{I, N}}});
             check_weight(op, "out_proj_weight", w.out_proj_weight, NamedShape<2>{{"d_model", "d_inner"}, {{Dm, I}}});
             // The remaining (1-D) shapes, and the config the weights describe, are the C++ check's.
             const blocks::MambaMixerConfig described = blocks::detail::check_mamba_mixer_weights(op, w);
             if (!(described == c)) {
               std::ostringstream os;
               os << op << ": the weights describe " << described << ", the configuration keywords " << c;
               fail(os.str());
             }
             auto held = std::make_unique<MambaHeld>();
             held->threads = threads;
             held->device = device_for(op, threads);
             {
               GilRelease release;
               held->mixer = std::make_unique<blocks::MambaMixer>(w, held->device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("d_model"), py::arg("d_inner"), py::arg("d_state") = 16,
           py::arg("d_conv") = 4, py::arg("dt_rank") = py::none(), py::arg("use_bias") = false,
           py::arg("use_conv_bias") = true, py::arg("threads") = 1,
           "MambaMixer(weights, *, d_model, d_inner, d_state=16, d_conv=4, dt_rank=None (= ceil(d_model / 16), "
           "transformers' 'auto'), use_bias=False, use_conv_bias=True, threads=1)")
      .def_property_readonly(
          "config",
          [](const MambaHeld& self) {
            const blocks::MambaMixerConfig& c = self.mixer->config();
            py::dict d;
            d["d_model"] = c.d_model, d["d_inner"] = c.d_inner, d["d_state"] = c.d_state, d["d_conv"] = c.d_conv;
            d["dt_rank"] = c.dt_rank, d["use_bias"] = c.use_bias, d["use_conv_bias"] = c.use_conv_bias;
            return d;
          },
          "The configuration (a dict of the C++ config fields).")
      .def_property_readonly("threads", [](const MambaHeld& self) { return self.threads; })
      .def_property_readonly(
          "parameter_bytes", [](const MambaHeld& self) { return self.mixer->parameter_bytes(); },
          "Bytes held by the mixer's parameters (packed projections included).")
      .def(
          "initial_cache",
          [](const MambaHeld& self, Index batch) {
            if (batch < 1) fail("MambaMixer.initial_cache: batch must be >= 1, got " + std::to_string(batch));
            return cache_to_dict(self.mixer->new_cache(batch));
          },
          py::arg("batch"),
          "The zero cache of `batch` sequences: {'conv_state': [B, d_inner, d_conv-1], 'ssm_state': "
          "[B, d_inner, d_state]}.")
      .def(
          "forward",
          [](MambaHeld& self, const py::object& x, const py::object& cache) {
            return mixer_forward(self, "MambaMixer::forward", x, cache, kMambaConv, kMambaSsm);
          },
          py::arg("x"), py::kw_only(), py::arg("cache") = py::none(),
          "y [B, L, d_model] = mixer(x [B, L, d_model]) from zero state; with cache= (a dict as initial_cache() "
          "returns), continues from it and returns (y, new_cache) (the given cache is not modified).")
      .def(
          "step",
          [](MambaHeld& self, const py::object& token, const py::object& cache) {
            return mixer_step(self, "MambaMixer::step", token, cache, kMambaConv, kMambaSsm);
          },
          py::arg("token"), py::arg("cache"),
          "One decode step: (y [B, d_model], new_cache) for the next token [B, d_model] of each sequence.");

  // ---- Mamba2Mixer -------------------------------------------------------------------------------
  const blocks::Mamba2MixerConfig defaults;
  py::class_<Mamba2Held>(
      m, "Mamba2Mixer",
      "The Mamba-2 token mixer of transformers' Mamba2Mixer (blocks::Mamba2Mixer), I = heads*head_dim, "
      "conv_dim = I + 2*n_groups*d_state. Weights: its state dict (in_proj.weight [I + conv_dim + heads, d_model] "
      "(rows z | x | B | C | dt), in_proj.bias (use_bias), conv1d.weight [conv_dim, 1, d_conv], conv1d.bias "
      "[conv_dim] (use_conv_bias), dt_bias [heads], A_log [heads], D [heads], norm.weight [I], out_proj.weight "
      "[d_model, I], out_proj.bias [d_model] (use_bias); '.' or '_'). Cache: a dict {'conv_state': "
      "[B, conv_dim, d_conv-1], 'ssm_state': [B, I, d_state] (the [B, heads, head_dim, d_state] state)}. The "
      "prefill clamps dt to [dt_min, dt_max]; the decode step does not (as the released code).")
      .def(py::init([](const py::object& weights, Index d_model, Index heads, Index head_dim, Index d_state,
                       Index n_groups, Index d_conv, bool use_bias, bool use_conv_bias, float dt_min, float dt_max,
                       double norm_eps, Index norm_group_size, Index chunk_size, int threads) {
             const char* op = "Mamba2Mixer";
             blocks::Mamba2MixerConfig c;
             c.d_model = d_model, c.heads = heads, c.head_dim = head_dim, c.d_state = d_state, c.n_groups = n_groups;
             c.d_conv = d_conv, c.use_bias = use_bias, c.use_conv_bias = use_conv_bias, c.dt_min = dt_min;
             c.dt_max = dt_max, c.norm_eps = norm_eps, c.norm_group_size = norm_group_size, c.chunk_size = chunk_size;
             if (norm_group_size < 0) fail(std::string(op) + ": norm_group_size must be >= 0 (0 = d_inner)");
             if (chunk_size < 0) fail(std::string(op) + ": chunk_size must be >= 0 (0 = the op picks)");
             blocks::detail::check_mamba2_mixer_config(op, c);
             blocks::Mamba2MixerWeights w;
             WeightTable t(op);
             t.add("in_proj_weight", w.in_proj_weight, "[I + conv_dim + heads, d_model]");
             if (use_bias) t.add("in_proj_bias", w.in_proj_bias, "[I + conv_dim + heads]");
             t.add("conv1d_weight", w.conv1d_weight, "[conv_dim, 1, d_conv]");
             if (use_conv_bias) t.add("conv1d_bias", w.conv1d_bias, "[conv_dim]");
             t.add("dt_bias", w.dt_bias, "[heads]");
             t.add("A_log", w.A_log, "[heads]");
             t.add("D", w.D, "[heads]");
             t.add("norm_weight", w.norm_weight, "[I]");
             t.add("out_proj_weight", w.out_proj_weight, "[d_model, I]");
             if (use_bias) t.add("out_proj_bias", w.out_proj_bias, "[d_model]");
             t.load(weights);
             auto held = std::make_unique<Mamba2Held>();
             held->threads = threads;
             held->device = device_for(op, threads);
             blocks::detail::check_mamba2_mixer_weights(op, c, w);  // every shape against the config
             {
               GilRelease release;
               held->mixer = std::make_unique<blocks::Mamba2Mixer>(c, w, held->device);
             }
             return held;
           }),
           py::arg("weights"), py::kw_only(), py::arg("d_model"), py::arg("heads"), py::arg("head_dim") = defaults.head_dim,
           py::arg("d_state") = defaults.d_state, py::arg("n_groups") = defaults.n_groups,
           py::arg("d_conv") = defaults.d_conv, py::arg("use_bias") = defaults.use_bias,
           py::arg("use_conv_bias") = defaults.use_conv_bias, py::arg("dt_min") = defaults.dt_min,
           py::arg("dt_max") = defaults.dt_max, py::arg("norm_eps") = defaults.norm_eps,
           py::arg("norm_group_size") = defaults.norm_group_size, py::arg("chunk_size") = defaults.chunk_size,
           py::arg("threads") = 1,
           "Mamba2Mixer(weights, *, d_model, heads, head_dim=64, d_state=128, n_groups=1, d_conv=4, use_bias=False, "
           "use_conv_bias=True, dt_min=0.0, dt_max=inf, norm_eps=1e-5, norm_group_size=0 (= d_inner, transformers; "
           "d_inner / n_groups = mamba_ssm), chunk_size=0 (the op picks), threads=1)")
      .def_property_readonly(
          "config",
          [](const Mamba2Held& self) {
            const blocks::Mamba2MixerConfig& c = self.mixer->config();
            py::dict d;
            d["d_model"] = c.d_model, d["heads"] = c.heads, d["head_dim"] = c.head_dim, d["d_state"] = c.d_state;
            d["n_groups"] = c.n_groups, d["d_conv"] = c.d_conv, d["use_bias"] = c.use_bias;
            d["use_conv_bias"] = c.use_conv_bias, d["dt_min"] = c.dt_min, d["dt_max"] = c.dt_max;
            d["norm_eps"] = c.norm_eps, d["norm_group_size"] = c.norm_group_size, d["chunk_size"] = c.chunk_size;
            return d;
          },
          "The configuration (a dict of the C++ config fields).")
      .def_property_readonly("threads", [](const Mamba2Held& self) { return self.threads; })
      .def_property_readonly(
          "parameter_bytes", [](const Mamba2Held& self) { return self.mixer->parameter_bytes(); },
          "Bytes held by the mixer's parameters (packed projections included).")
      .def(
          "initial_cache",
          [](const Mamba2Held& self, Index batch) {
            if (batch < 1) fail("Mamba2Mixer.initial_cache: batch must be >= 1, got " + std::to_string(batch));
            return cache_to_dict(self.mixer->new_cache(batch));
          },
          py::arg("batch"),
          "The zero cache of `batch` sequences: {'conv_state': [B, conv_dim, d_conv-1], 'ssm_state': "
          "[B, heads*head_dim, d_state]}.")
      .def(
          "forward",
          [](Mamba2Held& self, const py::object& x, const py::object& cache) {
            return mixer_forward(self, "Mamba2Mixer::forward", x, cache, kMamba2Conv, kMamba2Ssm);
          },
          py::arg("x"), py::kw_only(), py::arg("cache") = py::none(),
          "y [B, L, d_model] = mixer(x [B, L, d_model]) from zero state; with cache= (a dict as initial_cache() "
          "returns), continues from it and returns (y, new_cache) (the given cache is not modified).")
      .def(
          "step",
          [](Mamba2Held& self, const py::object& token, const py::object& cache) {
            return mixer_step(self, "Mamba2Mixer::step", token, cache, kMamba2Conv, kMamba2Ssm);
          },
          py::arg("token"), py::arg("cache"),
          "One decode step: (y [B, d_model], new_cache) for the next token [B, d_model] of each sequence (dt is not "
          "clamped, as the released step).");
}

}  // namespace tokenmix::python
