// Bindings of the linear family: linear_attention, lightning_attention (+ step, slope helpers),
// retention, simple_gla (+ step). Names, argument names and shapes as the C++ ops (linear/*.hpp);
// conventions in common.hpp. Layout heads-last: q, k [B, L, H, K], v [B, L, H, V]; state [B, H, K, V].

#include "common.hpp"

namespace tokenmix::python {

namespace {

linear::LinearAlgorithm parse_algorithm(const char* op, const std::string& s) {
  if (s == "auto_select") return linear::LinearAlgorithm::auto_select;
  if (s == "chunked") return linear::LinearAlgorithm::chunked;
  if (s == "recurrent") return linear::LinearAlgorithm::recurrent;
  throw py::value_error(std::string(op) + ": algorithm must be 'auto_select', 'chunked' or 'recurrent', got '" + s + "'");
}

linear::FeatureMap parse_feature_map(const char* op, const std::string& s) {
  if (s == "identity") return linear::FeatureMap::identity;
  if (s == "elu_plus_one") return linear::FeatureMap::elu_plus_one;
  if (s == "relu") return linear::FeatureMap::relu;
  throw py::value_error(std::string(op) + ": feature_map must be 'identity', 'elu_plus_one' or 'relu', got '" + s + "'");
}

py::array_t<float> vector_to_numpy(const std::vector<float>& v) {
  return py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data());
}

struct Qkv {
  Array q, k, v;
};
Qkv qkv_args(const char* op, const py::object& q, const py::object& k, const py::object& v) {
  return Qkv{as_array<4>(op, "q", q, "[B, L, H, K]"), as_array<4>(op, "k", k, "[B, L, H, K]"),
             as_array<4>(op, "v", v, "[B, L, H, V]")};
}

struct Step {
  Array state, q1, k1, v1;
};
Step step_args(const char* op, const py::object& state, const py::object& q1, const py::object& k1, const py::object& v1) {
  return Step{as_array<4>(op, "state", state, "[B, H, K, V]"), as_array<3>(op, "q1", q1, "[B, H, K]"),
              as_array<3>(op, "k1", k1, "[B, H, K]"), as_array<3>(op, "v1", v1, "[B, H, V]")};
}

py::tuple result_tuple(linear::LinearResult&& r) {
  return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.final_state)));
}

}  // namespace

void register_linear(py::module_& m) {
  // ---- helpers: slopes / log decays ----
  m.def(
      "alibi_slopes", [](Index H) { return vector_to_numpy(linear::alibi_slopes(H)); }, py::arg("H"),
      "ALiBi slopes of H heads (OpenNLPLab's get_slopes). Returns [H].");
  m.def(
      "tnl_slopes",
      [](Index H, Index layer, Index num_layers) { return vector_to_numpy(linear::tnl_slopes(H, layer, num_layers)); },
      py::arg("H"), py::arg("layer"), py::arg("num_layers"),
      "TransNormerLLM's per-layer Lightning slopes: alibi_slopes(H) · (1 - layer/(num_layers - 1) + 1e-5) "
      "(layer 0-based). Returns [H].");
  m.def(
      "fla_lightning_slopes",
      [](Index H, Index layer, Index num_layers) {
        return vector_to_numpy(linear::fla_lightning_slopes(H, layer, num_layers));
      },
      py::arg("H"), py::arg("layer"), py::arg("num_layers"),
      "fla's chunk_lightning_attn slopes: (8/H) · (1 - layer/num_layers) · h. Returns [H].");
  m.def(
      "retention_log_decay", [](Index H) { return vector_to_numpy(linear::retention_log_decay(H)); }, py::arg("H"),
      "RetNet's per-head log decay log(1 - 2^(-5-h)) (simple_gla's g_gamma). Returns [H].");

  // ---- simple_gla ----
  m.def(
      "simple_gla",
      [](const py::object& q, const py::object& k, const py::object& v, const py::object& g, const py::object& g_gamma,
         const std::optional<float>& scale, const py::object& initial_state, const std::string& algorithm,
         Index chunk_size, int threads) {
        const char* op = "simple_gla";
        const Qkv a = qkv_args(op, q, k, v);
        const std::optional<Array> ga = as_optional<3>(op, "g", g, "[B, L, H]");
        const std::optional<Array> gga = as_optional<1>(op, "g_gamma", g_gamma, "[H]");
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, H, K, V]");
        linear::SimpleGlaOptions o;
        o.g = view<3>(ga), o.g_gamma = view<1>(gga), o.scale = scale, o.initial_state = view<4>(h0);
        o.algorithm = parse_algorithm(op, algorithm), o.chunk_size = chunk_size, o.device = device_for(op, threads);
        linear::LinearResult r;
        {
          GilRelease release;
          r = linear::simple_gla(view<4>(a.q), view<4>(a.k), view<4>(a.v), o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("g") = py::none(),
      py::arg("g_gamma") = py::none(), py::arg("scale") = py::none(), py::arg("initial_state") = py::none(),
      py::arg("algorithm") = "auto_select", py::arg("chunk_size") = 0, py::arg("threads") = 1,
      "Simple gated linear attention (fla's chunk_simple_gla): S_t = exp(g_t)·S_{t-1} + k_tᵀ v_t, o_t = scale·q_t S_t. "
      "q, k [B, L, H, K]; v [B, L, H, V]; g [B, L, H] (per-token log decay) or g_gamma [H] (per head), not both; "
      "scale default 1/sqrt(K); initial_state [B, H, K, V]; algorithm 'auto_select', 'chunked' or 'recurrent'; "
      "chunk_size 0: default. Returns (out [B, L, H, V], final_state [B, H, K, V]).");

  m.def(
      "simple_gla_step",
      [](const py::object& state, const py::object& q1, const py::object& k1, const py::object& v1, const py::object& g,
         const py::object& g_gamma, const std::optional<float>& scale) {
        const char* op = "simple_gla_step";
        const Step a = step_args(op, state, q1, k1, v1);
        const std::optional<Array> ga = as_optional<2>(op, "g", g, "[B, H]");
        const std::optional<Array> gga = as_optional<1>(op, "g_gamma", g_gamma, "[H]");
        linear::LinearStepOptions o;
        o.g = view<2>(ga), o.g_gamma = view<1>(gga), o.scale = scale;
        // The state is updated in a copy that is returned (the caller's array is left as it was).
        Tensor<float, 4> new_state = view<4>(a.state);
        Tensor<float, 3> out;
        {
          GilRelease release;
          out = linear::simple_gla_step(TensorView<float, 4>(new_state.data(), new_state.dimensions()), view<3>(a.q1),
                                        view<3>(a.k1), view<3>(a.v1), o);
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(new_state)));
      },
      py::arg("state"), py::arg("q1"), py::arg("k1"), py::arg("v1"), py::kw_only(), py::arg("g") = py::none(),
      py::arg("g_gamma") = py::none(), py::arg("scale") = py::none(),
      "One decode step of simple_gla: state [B, H, K, V]; q1, k1 [B, H, K]; v1 [B, H, V]; g [B, H] (this token's "
      "log decay) or g_gamma [H]; scale default 1/sqrt(K). Returns (out [B, H, V], new_state [B, H, K, V]); the "
      "state argument is not modified. Runs on the calling thread.");

  // ---- lightning attention ----
  m.def(
      "lightning_attention",
      [](const py::object& q, const py::object& k, const py::object& v, const py::object& slopes, float scale,
         const py::object& initial_state, const std::string& algorithm, Index block_size, int threads) {
        const char* op = "lightning_attention";
        const Qkv a = qkv_args(op, q, k, v);
        const std::optional<Array> sa = as_optional<1>(op, "slopes", slopes, "[H]");
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, H, K, V]");
        linear::LightningOptions o;
        o.slopes = view<1>(sa), o.scale = scale, o.initial_state = view<4>(h0);
        o.algorithm = parse_algorithm(op, algorithm), o.block_size = block_size, o.device = device_for(op, threads);
        linear::LinearResult r;
        {
          GilRelease release;
          r = linear::lightning_attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("slopes") = py::none(), py::arg("scale") = 1.0f,
      py::arg("initial_state") = py::none(), py::arg("algorithm") = "auto_select", py::arg("block_size") = 0,
      py::arg("threads") = 1,
      "Lightning Attention (TransNormerLLM): o_t = scale·Σ_{s<=t} exp(-slope_h)^(t-s) (q_t·k_s) v_s. q, k [B, L, H, K]; "
      "v [B, L, H, V]; slopes [H] (>= 0; None: no decay; see tnl_slopes / fla_lightning_slopes); scale default 1; "
      "initial_state [B, H, K, V]; algorithm 'auto_select', 'chunked' or 'recurrent'; block_size 0: default. "
      "Returns (out [B, L, H, V], final_state [B, H, K, V]).");

  m.def(
      "lightning_attention_step",
      [](const py::object& state, const py::object& q1, const py::object& k1, const py::object& v1,
         const py::object& slopes, float scale) {
        const char* op = "lightning_attention_step";
        const Step a = step_args(op, state, q1, k1, v1);
        const std::optional<Array> sa = as_optional<1>(op, "slopes", slopes, "[H]");
        linear::LightningStepOptions o;
        o.slopes = view<1>(sa), o.scale = scale;
        Tensor<float, 4> new_state = view<4>(a.state);  // a copy: the caller's state is left as it was
        Tensor<float, 3> out;
        {
          GilRelease release;
          out = linear::lightning_attention_step(TensorView<float, 4>(new_state.data(), new_state.dimensions()),
                                                 view<3>(a.q1), view<3>(a.k1), view<3>(a.v1), o);
        }
        return py::make_tuple(to_numpy(std::move(out)), to_numpy(std::move(new_state)));
      },
      py::arg("state"), py::arg("q1"), py::arg("k1"), py::arg("v1"), py::kw_only(), py::arg("slopes") = py::none(),
      py::arg("scale") = 1.0f,
      "One decode step of lightning_attention: state [B, H, K, V]; q1, k1 [B, H, K]; v1 [B, H, V]; slopes [H]; "
      "scale default 1. Returns (out [B, H, V], new_state [B, H, K, V]); the state argument is not modified. "
      "Runs on the calling thread.");

  // ---- retention ----
  m.def(
      "retention",
      [](const py::object& q, const py::object& k, const py::object& v, const std::optional<float>& scale,
         const py::object& initial_state, const std::string& algorithm, Index chunk_size, int threads) {
        const char* op = "retention";
        const Qkv a = qkv_args(op, q, k, v);
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, H, K, V]");
        linear::SimpleGlaOptions o;
        o.scale = scale, o.initial_state = view<4>(h0);
        o.algorithm = parse_algorithm(op, algorithm), o.chunk_size = chunk_size, o.device = device_for(op, threads);
        linear::LinearResult r;
        {
          GilRelease release;
          r = linear::retention(view<4>(a.q), view<4>(a.k), view<4>(a.v), o);
        }
        return result_tuple(std::move(r));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("scale") = py::none(),
      py::arg("initial_state") = py::none(), py::arg("algorithm") = "auto_select", py::arg("chunk_size") = 0,
      py::arg("threads") = 1,
      "RetNet retention (fla's chunk_retention): simple_gla with g_gamma = retention_log_decay(H). q, k [B, L, H, K]; "
      "v [B, L, H, V]; scale default 1/sqrt(K); initial_state [B, H, K, V]. Returns (out [B, L, H, V], "
      "final_state [B, H, K, V]).");

  // ---- linear attention ----
  m.def(
      "linear_attention",
      [](const py::object& q, const py::object& k, const py::object& v, bool causal, const std::string& feature_map,
         bool normalize, float eps, const std::optional<float>& scale, const py::object& initial_state,
         const py::object& initial_normalizer, const std::string& algorithm, Index chunk_size, int threads) {
        const char* op = "linear_attention";
        const Qkv a = qkv_args(op, q, k, v);
        const std::optional<Array> h0 = as_optional<4>(op, "initial_state", initial_state, "[B, H, K, V]");
        const std::optional<Array> z0 = as_optional<3>(op, "initial_normalizer", initial_normalizer, "[B, H, K]");
        linear::LinearAttentionOptions o;
        o.causal = causal, o.feature_map = parse_feature_map(op, feature_map), o.normalize = normalize, o.eps = eps;
        o.scale = scale, o.initial_state = view<4>(h0), o.initial_normalizer = view<3>(z0);
        o.algorithm = parse_algorithm(op, algorithm), o.chunk_size = chunk_size, o.device = device_for(op, threads);
        linear::LinearResult r;
        {
          GilRelease release;
          r = linear::linear_attention(view<4>(a.q), view<4>(a.k), view<4>(a.v), o);
        }
        py::object z = py::none();
        if (normalize) z = to_numpy(std::move(r.final_normalizer));
        return py::make_tuple(to_numpy(std::move(r.out)), to_numpy(std::move(r.final_state)), z);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("causal") = true,
      py::arg("feature_map") = "identity", py::arg("normalize") = false, py::arg("eps") = 1e-10f,
      py::arg("scale") = py::none(), py::arg("initial_state") = py::none(), py::arg("initial_normalizer") = py::none(),
      py::arg("algorithm") = "auto_select", py::arg("chunk_size") = 0, py::arg("threads") = 1,
      "Linear attention (Katharopoulos et al.; fla's chunk_linear_attn): causal o_t = scale·φ(q_t) S_t, "
      "S_t = S_{-1} + Σ_{s<=t} φ(k_s)ᵀ v_s (non-causal: over all s); normalize divides by scale·φ(q_t)·z_t + eps, "
      "z_t = z_{-1} + Σ_{s<=t} φ(k_s). q, k [B, L, H, K]; v [B, L, H, V]; feature_map 'identity', 'elu_plus_one' "
      "or 'relu'; scale default 1/sqrt(K); initial_state [B, H, K, V] and initial_normalizer [B, H, K] (causal "
      "only). Returns (out [B, L, H, V], final_state [B, H, K, V], final_normalizer [B, H, K] or None without "
      "normalize).");
}

}  // namespace tokenmix::python
