#pragma once
// blocks::MambaLM: transformers' MambaForCausalLM on the CPU, loaded from a save_pretrained
// directory (config.json + model.safetensors, or a sharded model.safetensors.index.json):
//
//   blocks::MambaLM lm = blocks::MambaLM::load("mamba-130m-hf");
//   std::vector<std::int64_t> ids = lm.generate_greedy({3, 14, 15}, 20);   // the new ids
//   // or, step by step:
//   blocks::MambaLMCache cache = lm.new_cache(1);
//   Tensor<float, 3> logits = lm.forward(prompt_ids, &cache);               // [1, L, V] prefill
//   Tensor<float, 2> next = lm.step(&token, 1, cache);                      // [1, V] decode
//
// Structure (spec mamba_scan.md §2, HF MambaModel): embeddings → num_hidden_layers pre-norm residual
// blocks h = h + mixer(rms_norm(h)) → norm_f → lm_head (tied to the embeddings unless
// tie_word_embeddings is false). Every config key that changes the math is honoured (MambaLMConfig).
// fp32 throughout: residual_in_fp32 is read and recorded, and changes nothing when the model is fp32
// (transformers casts the residual to fp32 only when the weights are half precision).
//
// Memory: the mixers keep only their packed projections; checkpoint tensors are converted to float
// one layer at a time. The lm_head (or the tied embedding table) stays in nn.Linear layout: the
// decode GEMV streams it once per token; logits for more than kLinearSmallM positions (all_tokens)
// pack it on the fly, a temporary of its size.

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "tokenmix/blocks/embedding.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/blocks/mamba2_mixer.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"
#include "tokenmix/blocks/rms_norm.hpp"
#include "tokenmix/io/json.hpp"
#include "tokenmix/io/safetensors.hpp"

#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

namespace tokenmix::blocks {

namespace detail {
// Loading converts and packs one layer at a time; the freed unpacked tensors stay mapped in glibc's
// heap (fragmented between the packed ones) and would add ~35% to the resident size of a 130m
// model. Hand them back to the OS once the model is built.
inline void release_loader_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}
}  // namespace detail

// transformers' MambaConfig / Mamba2Config keys that change the math, with MambaConfig's defaults
// (from_json applies Mamba2Config's for model_type "mamba2").
struct MambaLMConfig {
  std::string model_type = "mamba";  // "mamba" (MambaForCausalLM) or "mamba2" (Mamba2ForCausalLM)
  Index vocab_size = 50280;
  Index hidden_size = 768;
  Index num_hidden_layers = 32;
  Index state_size = 16;
  Index intermediate_size = 1536;  // = expand · hidden_size unless given
  Index conv_kernel = 4;
  Index time_step_rank = 48;       // "auto" = ceil(hidden_size / 16)
  bool use_bias = false;
  bool use_conv_bias = true;
  double layer_norm_epsilon = 1e-5;
  bool residual_in_fp32 = true;    // no effect in fp32 (see above)
  bool tie_word_embeddings = true;
  std::optional<std::int64_t> eos_token_id;  // generate_greedy stops after emitting it
  // Mamba-2 only (state_size, conv_kernel, use_bias, use_conv_bias, layer_norm_epsilon shared):
  Index num_heads = 0, head_dim = 64, n_groups = 1, chunk_size = 256;
  float time_step_min_limit = 0.0f, time_step_max_limit = std::numeric_limits<float>::infinity();  // time_step_limit
  // The gated norm's groups: 0 = all intermediate_size channels (transformers' MambaRMSNormGated),
  // intermediate_size / n_groups reproduces mamba_ssm's RMSNormGated (not a transformers key).
  Index norm_group_size = 0;

  bool is_mamba2() const { return model_type == "mamba2"; }

  Mamba2MixerConfig mamba2_mixer() const {
    Mamba2MixerConfig c;
    c.d_model = hidden_size, c.heads = num_heads, c.head_dim = head_dim, c.d_state = state_size, c.n_groups = n_groups;
    c.d_conv = conv_kernel, c.use_bias = use_bias, c.use_conv_bias = use_conv_bias;
    c.dt_min = time_step_min_limit, c.dt_max = time_step_max_limit, c.norm_eps = layer_norm_epsilon;
    c.norm_group_size = norm_group_size, c.chunk_size = chunk_size;
    return c;
  }

  MambaMixerConfig mixer() const {
    return MambaMixerConfig{hidden_size, intermediate_size, state_size, conv_kernel, time_step_rank, use_bias,
                            use_conv_bias};
  }

  // The shapes of state-spaces/mamba-130m-hf (24 layers, d_model 768, vocab 50280).
  static MambaLMConfig mamba_130m() {
    MambaLMConfig c;
    c.num_hidden_layers = 24;
    return c;
  }

  // From a transformers config.json (model_type "mamba"). Missing keys take MambaConfig's defaults,
  // as from_pretrained does; keys that do not change the math (initialisation, use_cache...) are
  // ignored. Rejects other model types and activations other than SiLU.
  static MambaLMConfig from_json(const io::JsonValue& j) {
    const char* op = "MambaLMConfig";
    TOKENMIX_CHECK(j.is_object(), op, ": config.json must hold a JSON object");
    const std::string model_type = j.get_or("model_type", "mamba");
    TOKENMIX_CHECK(model_type == "mamba" || model_type == "mamba2", op, ": model_type is \"", model_type,
                   "\", expected \"mamba\" (MambaForCausalLM) or \"mamba2\" (Mamba2ForCausalLM)");
    const std::string act = j.get_or("hidden_act", "silu");
    TOKENMIX_CHECK(act == "silu", op, ": hidden_act is \"", act, "\", only \"silu\" is supported");
    MambaLMConfig c;
    c.model_type = model_type;
    if (c.is_mamba2()) {  // Mamba2Config's defaults
      c.vocab_size = 32768, c.hidden_size = 4096, c.num_hidden_layers = 64, c.state_size = 128;
      c.tie_word_embeddings = false, c.num_heads = 128, c.n_groups = 8;
    }
    c.vocab_size = j.get_or<Index>("vocab_size", c.vocab_size);
    c.hidden_size = j.get_or<Index>("hidden_size", c.hidden_size);
    c.num_hidden_layers = j.get_or<Index>("num_hidden_layers", c.num_hidden_layers);
    c.state_size = j.get_or<Index>("state_size", c.state_size);
    c.conv_kernel = j.get_or<Index>("conv_kernel", c.conv_kernel);
    const double expand = j.contains("expand") ? j.at("expand").as_double() : 2.0;
    c.intermediate_size = j.contains("intermediate_size") && !j.at("intermediate_size").is_null()
                              ? j.at("intermediate_size").as<Index>()
                              : static_cast<Index>(expand * static_cast<double>(c.hidden_size));
    const bool auto_rank = !j.contains("time_step_rank") ||
                           (j.at("time_step_rank").is_string() && j.at("time_step_rank").as_string() == "auto");
    c.time_step_rank = auto_rank ? (c.hidden_size + 15) / 16 : j.at("time_step_rank").as<Index>();
    c.use_bias = j.get_or<bool>("use_bias", c.use_bias);
    c.use_conv_bias = j.get_or<bool>("use_conv_bias", c.use_conv_bias);
    c.layer_norm_epsilon = j.get_or<double>("layer_norm_epsilon", c.layer_norm_epsilon);
    c.residual_in_fp32 = j.get_or<bool>("residual_in_fp32", c.residual_in_fp32);
    c.tie_word_embeddings = j.get_or<bool>("tie_word_embeddings", c.tie_word_embeddings);
    if (j.contains("eos_token_id") && j.at("eos_token_id").is_int()) c.eos_token_id = j.at("eos_token_id").as_int();
    if (c.is_mamba2()) {
      c.num_heads = j.get_or<Index>("num_heads", c.num_heads);
      c.head_dim = j.get_or<Index>("head_dim", c.head_dim);
      c.n_groups = j.get_or<Index>("n_groups", c.n_groups);
      c.chunk_size = j.get_or<Index>("chunk_size", c.chunk_size);
      c.intermediate_size = static_cast<Index>(expand * static_cast<double>(c.hidden_size));  // Mamba2Mixer's rule
      TOKENMIX_CHECK(c.num_heads * c.head_dim == c.intermediate_size, op, ": num_heads=", c.num_heads, " x head_dim=",
                     c.head_dim, " must equal expand x hidden_size = ", c.intermediate_size);
      if (j.contains("time_step_limit")) {
        const io::JsonValue& limit = j.at("time_step_limit");
        TOKENMIX_CHECK(limit.is_array() && limit.size() == 2, op, ": time_step_limit must be [min, max], got ",
                       limit.dump());
        c.time_step_min_limit = static_cast<float>(json_float(limit.at(std::size_t{0})));
        c.time_step_max_limit = static_cast<float>(json_float(limit.at(std::size_t{1})));
      }
    }
    c.check(op);
    return c;
  }

  // A float that transformers may write as a number or, for non-finite values, as
  // {"__float__": "Infinity"} (its JSON encoder's convention).
  static double json_float(const io::JsonValue& v) {
    if (v.is_number()) return v.as_double();
    TOKENMIX_CHECK(v.is_object() && v.contains("__float__") && v.at("__float__").is_string(), "MambaLMConfig: ",
                   v.dump(), " is not a number");
    const std::string& text = v.at("__float__").as_string();
    if (text == "Infinity" || text == "inf") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity" || text == "-inf") return -std::numeric_limits<double>::infinity();
    TOKENMIX_CHECK(false, "MambaLMConfig: unsupported float \"", text, "\"");
    return 0;
  }

  static MambaLMConfig from_file(const std::string& path) { return from_json(io::parse_json_file(path)); }

  void check(const char* op) const {
    TOKENMIX_CHECK(vocab_size > 0 && hidden_size > 0 && num_hidden_layers >= 0 && state_size > 0 &&
                       intermediate_size > 0 && conv_kernel > 0 && time_step_rank > 0,
                   op, ": vocab_size, hidden_size, state_size, intermediate_size, conv_kernel and time_step_rank ",
                   "must be positive and num_hidden_layers >= 0, got vocab_size=", vocab_size, " hidden_size=",
                   hidden_size, " num_hidden_layers=", num_hidden_layers, " state_size=", state_size,
                   " intermediate_size=", intermediate_size, " conv_kernel=", conv_kernel,
                   " time_step_rank=", time_step_rank);
    tokenmix::detail::check_finite(op, "layer_norm_epsilon", layer_norm_epsilon);
    TOKENMIX_CHECK(layer_norm_epsilon >= 0, op, ": layer_norm_epsilon must be >= 0, got ", layer_norm_epsilon);
    if (is_mamba2()) detail::check_mamba2_mixer_config(op, mamba2_mixer());
  }
};

// The decode state of a whole model: one MambaMixerCache per layer, and how many tokens each of the
// B sequences has consumed. A value: copy it to fork, save() / load() it to resume later.
struct MambaLMCache {
  std::vector<MambaMixerCache> layers;
  Index seen_tokens = 0;

  Index batch() const { return layers.empty() ? 0 : layers.front().batch(); }

  // A safetensors file: layers.{i}.conv_state [B, I, K-1], layers.{i}.ssm_state [B, I, N] (F32),
  // metadata {"format": "tokenmix.mamba_cache", "layers": n, "seen_tokens": t}.
  void save(const std::string& path) const {
    std::vector<io::SafetensorsEntry> entries;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      entries.emplace_back("layers." + std::to_string(i) + ".conv_state", layers[i].conv_state);
      entries.emplace_back("layers." + std::to_string(i) + ".ssm_state", layers[i].ssm_state);
    }
    io::write_safetensors(path, entries,
                          {{"format", "tokenmix.mamba_cache"},
                           {"layers", std::to_string(layers.size())},
                           {"seen_tokens", std::to_string(seen_tokens)}});
  }

  static MambaLMCache load(const std::string& path) {
    const io::SafetensorsFile file(path);
    const auto& meta = file.metadata();
    auto field = [&](const char* key) -> const std::string& {
      const auto it = meta.find(key);
      TOKENMIX_CHECK(it != meta.end(), "MambaLMCache::load: '", path, "' has no \"", key,
                     "\" metadata (not a file written by MambaLMCache::save)");
      return it->second;
    };
    TOKENMIX_CHECK(field("format") == "tokenmix.mamba_cache", "MambaLMCache::load: '", path, "' has format \"",
                   field("format"), "\", expected \"tokenmix.mamba_cache\"");
    auto parse_count = [&](const char* key) {
      const std::string& s = field(key);
      TOKENMIX_CHECK(!s.empty() && s.size() < 19 && s.find_first_not_of("0123456789") == std::string::npos,
                     "MambaLMCache::load: '", path, "': metadata \"", key, "\" = \"", s,
                     "\" is not a non-negative integer");
      return static_cast<Index>(std::stoll(s));
    };
    MambaLMCache cache;
    cache.seen_tokens = parse_count("seen_tokens");
    const Index n = parse_count("layers");
    TOKENMIX_CHECK(static_cast<std::size_t>(2 * n) == file.size(), "MambaLMCache::load: '", path, "' declares ", n,
                   " layers but holds ", file.size(), " tensors, expected ", 2 * n);
    for (Index i = 0; i < n; ++i) {
      const std::string prefix = "layers." + std::to_string(i);
      MambaMixerCache layer{file.read_float<3>(prefix + ".conv_state"), file.read_float<3>(prefix + ".ssm_state")};
      TOKENMIX_CHECK(layer.conv_state.dimension(0) == layer.ssm_state.dimension(0) &&
                         layer.conv_state.dimension(1) == layer.ssm_state.dimension(1),
                     "MambaLMCache::load: '", path, "': ", prefix, ".conv_state ", shape_of(layer.conv_state),
                     " and ", prefix, ".ssm_state ", shape_of(layer.ssm_state), " disagree on [B, I]");
      cache.layers.push_back(std::move(layer));
    }
    return cache;
  }
};

// Reads tensors by name from a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ({"weight_map": {name: file}}), as save_pretrained writes them.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& dir) : dir_(dir) {
    const std::string index = dir + "/model.safetensors.index.json";
    if (std::ifstream(index).good()) {
      const io::JsonValue j = io::parse_json_file(index);
      for (const auto& [name, file] : j.at("weight_map").as_object()) {
        const std::string& shard = file.as_string();
        TOKENMIX_CHECK(shard.find('/') == std::string::npos && shard.find("..") == std::string::npos,
                       "MambaLM::load: '", index, "' maps '", name, "' to '", shard,
                       "', expected a file name in the same directory");
        if (!files_.count(shard)) files_.emplace(shard, std::make_unique<io::SafetensorsFile>(dir + "/" + shard));
        where_[name] = files_.at(shard).get();
      }
    } else {
      const std::string single = dir + "/model.safetensors";
      TOKENMIX_CHECK(std::ifstream(single).good(), "MambaLM::load: '", dir,
                     "' has neither model.safetensors nor model.safetensors.index.json");
      auto file = std::make_unique<io::SafetensorsFile>(single);
      for (const std::string& name : file->names()) where_[name] = file.get();
      files_.emplace("model.safetensors", std::move(file));
    }
  }

  bool contains(const std::string& name) const { return where_.count(name) != 0; }

  // Reads `name` as float with exactly the shape `expected` (what config.json implies).
  template <int R>
  Tensor<float, R> read(const std::string& name, const Shape<R>& expected) const {
    const auto it = where_.find(name);
    TOKENMIX_CHECK(it != where_.end(), "MambaLM::load: '", dir_, "': the checkpoint has no tensor '", name, "'");
    const io::TensorInfo& info = it->second->info(name);
    bool same = info.shape.size() == static_cast<std::size_t>(R);
    for (int d = 0; same && d < R; ++d) same = info.shape[static_cast<std::size_t>(d)] == expected[d];
    TOKENMIX_CHECK(same, "MambaLM::load: '", dir_, "': tensor '", name, "' has shape ",
                   io::detail::format_dims(info.shape), ", but config.json implies ", expected);
    return it->second->read_float<R>(name);
  }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, const io::SafetensorsFile*> where_;
};

// Which positions forward() returns logits for.
enum class LogitsFor { all_tokens, last_token };

class MambaLM {
 public:
  // Loads a transformers MambaForCausalLM directory (see CheckpointReader). Embeddings under
  // backbone.embeddings.weight (transformers) or backbone.embedding.weight (mamba_ssm); lm_head.weight
  // when tie_word_embeddings is false. F32, F16 and BF16 tensors are converted to float.
  static MambaLM load(const std::string& dir, const Eigen::ThreadPoolDevice* device = nullptr) {
    const MambaLMConfig config = MambaLMConfig::from_file(dir + "/config.json");
    const CheckpointReader ckpt(dir);
    const MambaMixerConfig mc = config.mixer();
    const Index V = config.vocab_size, Dm = config.hidden_size, I = mc.d_inner, N = mc.d_state, K = mc.d_conv,
                R = mc.dt_rank;
    MambaLM lm;
    lm.config_ = config;
    const std::string emb = ckpt.contains("backbone.embeddings.weight") ? "backbone.embeddings.weight"
                                                                        : "backbone.embedding.weight";
    lm.embeddings_ = ckpt.read<2>(emb, Shape<2>{{V, Dm}});
    for (Index i = 0; i < config.num_hidden_layers; ++i) {
      const std::string p = "backbone.layers." + std::to_string(i) + ".";
      Tensor<float, 1> norm = ckpt.read<1>(p + "norm.weight", Shape<1>{{Dm}});
      if (config.is_mamba2()) {
        lm.layers_.push_back(Layer{std::move(norm), read_mamba2_mixer(ckpt, p + "mixer.", config, device)});
        continue;
      }
      MambaMixerWeights w;
      w.in_proj_weight = ckpt.read<2>(p + "mixer.in_proj.weight", Shape<2>{{2 * I, Dm}});
      w.conv1d_weight = ckpt.read<3>(p + "mixer.conv1d.weight", Shape<3>{{I, 1, K}});
      w.x_proj_weight = ckpt.read<2>(p + "mixer.x_proj.weight", Shape<2>{{R + 2 * N, I}});
      w.dt_proj_weight = ckpt.read<2>(p + "mixer.dt_proj.weight", Shape<2>{{I, R}});
      w.dt_proj_bias = ckpt.read<1>(p + "mixer.dt_proj.bias", Shape<1>{{I}});
      w.A_log = ckpt.read<2>(p + "mixer.A_log", Shape<2>{{I, N}});
      w.D = ckpt.read<1>(p + "mixer.D", Shape<1>{{I}});
      w.out_proj_weight = ckpt.read<2>(p + "mixer.out_proj.weight", Shape<2>{{Dm, I}});
      if (config.use_conv_bias) w.conv1d_bias = ckpt.read<1>(p + "mixer.conv1d.bias", Shape<1>{{I}});
      if (config.use_bias) {
        w.in_proj_bias = ckpt.read<1>(p + "mixer.in_proj.bias", Shape<1>{{2 * I}});
        w.out_proj_bias = ckpt.read<1>(p + "mixer.out_proj.bias", Shape<1>{{Dm}});
      }
      lm.layers_.push_back(Layer{std::move(norm), MambaMixer(w, device)});
    }
    lm.norm_f_ = ckpt.read<1>("backbone.norm_f.weight", Shape<1>{{Dm}});
    if (!config.tie_word_embeddings) lm.lm_head_ = ckpt.read<2>("lm_head.weight", Shape<2>{{V, Dm}});
    detail::release_loader_memory();
    return lm;
  }

  // A randomly initialised model (random_mamba_mixer_weights per layer, embeddings U(±0.1), norms 1):
  // for benchmarks and for seeing the speed with nothing downloaded.
  static MambaLM random(const MambaLMConfig& config, std::uint64_t seed,
                        const Eigen::ThreadPoolDevice* device = nullptr) {
    config.check("MambaLM::random");
    MambaLM lm;
    lm.config_ = config;
    const Index V = config.vocab_size, Dm = config.hidden_size;
    SplitMix64 rng(seed);
    lm.embeddings_ = Tensor<float, 2>(V, Dm);
    rng.fill_uniform(lm.embeddings_.data(), lm.embeddings_.size(), -0.1f, 0.1f);
    for (Index i = 0; i < config.num_hidden_layers; ++i) {
      Tensor<float, 1> norm(Dm);
      norm.setConstant(1.0f);
      if (config.is_mamba2())
        lm.layers_.push_back(Layer{std::move(norm), Mamba2Mixer(config.mamba2_mixer(),
                                                                random_mamba2_mixer_weights(config.mamba2_mixer(), rng.next()),
                                                                device)});
      else
        lm.layers_.push_back(Layer{std::move(norm), MambaMixer(random_mamba_mixer_weights(config.mixer(), rng.next()), device)});
    }
    lm.norm_f_ = Tensor<float, 1>(Dm);
    lm.norm_f_.setConstant(1.0f);
    if (!config.tie_word_embeddings) {
      lm.lm_head_ = Tensor<float, 2>(V, Dm);
      rng.fill_uniform(lm.lm_head_->data(), lm.lm_head_->size(), -0.1f, 0.1f);
    }
    detail::release_loader_memory();
    return lm;
  }

  const MambaLMConfig& config() const { return config_; }

  // Bytes of all parameters as held (packed projections with their padding, embeddings, head).
  std::size_t parameter_bytes() const {
    std::size_t bytes = sizeof(float) * static_cast<std::size_t>(embeddings_.size() + norm_f_.size());
    if (lm_head_) bytes += sizeof(float) * static_cast<std::size_t>(lm_head_->size());
    for (const Layer& l : layers_)
      bytes += std::visit([](const auto& m) { return m.parameter_bytes(); }, l.mixer) +
               sizeof(float) * static_cast<std::size_t>(l.norm.size());
    return bytes;
  }

  // Bytes one decode step reads from memory: every layer's parameters, norm_f and the head (the
  // embedding lookup reads one row; a tied head is the embedding table, read once as the head).
  std::size_t decode_bytes_per_token() const {
    std::size_t bytes = parameter_bytes();
    if (lm_head_) bytes -= sizeof(float) * static_cast<std::size_t>(embeddings_.size());  // only one row read
    return bytes;
  }

  MambaLMCache new_cache(Index batch) const {
    MambaLMCache cache;
    for (const Layer& l : layers_)
      cache.layers.push_back(std::visit([batch](const auto& m) { return m.new_cache(batch); }, l.mixer));
    return cache;
  }

  // Logits [B, L, V] (all_tokens) or [B, 1, V] (last_token) for token ids [B, L]. With a cache, the
  // sequences continue from it and it advances by L tokens; without, they start from zero state.
  Tensor<float, 3> forward(const ConstTensorView<std::int64_t, 2>& ids, MambaLMCache* cache = nullptr,
                           LogitsFor which = LogitsFor::all_tokens, const Eigen::ThreadPoolDevice* device = nullptr) const {
    const char* op = "MambaLM::forward";
    const Index B = ids.dimension(0), L = ids.dimension(1), Dm = config_.hidden_size;
    if (cache) check_cache(op, *cache, B);
    const Index rows_out = which == LogitsFor::all_tokens ? L : std::min<Index>(L, 1);
    Tensor<float, 3> logits(B, rows_out, config_.vocab_size);
    if (B == 0 || L == 0) return logits;
    Tensor<float, 2> hidden = embedding(ids.data(), B * L, ConstTensorView<float, 2>(embeddings_));  // [B·L, Dm]
    Tensor<float, 2> normed(B * L, Dm), mixed(B * L, Dm);
    MambaLMCache local;
    if (!cache) {
      local = new_cache(B);
      cache = &local;
    }
    MambaMixerScratch scratch;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      rms_norm(ConstTensorView<float, 2>(hidden), ConstTensorView<float, 1>(layers_[i].norm), config_.layer_norm_epsilon,
               TensorView<float, 2>(normed.data(), normed.dimensions()), device);
      std::visit([&](const auto& m) {
        m.forward(ConstTensorView<float, 3>(normed.data(), B, L, Dm), TensorView<float, 3>(mixed.data(), B, L, Dm),
                  &cache->layers[i], device, &scratch);
      }, layers_[i].mixer);
      hidden += mixed;  // residual (fp32)
    }
    cache->seen_tokens += L;
    if (which == LogitsFor::last_token) {  // only the rows of each sequence's last position
      Tensor<float, 2> last(B, Dm);
      for (Index b = 0; b < B; ++b) last.chip(b, 0) = hidden.chip(b * L + L - 1, 0);
      hidden = std::move(last);
      normed = Tensor<float, 2>(B, Dm);
    }
    rms_norm(ConstTensorView<float, 2>(hidden), ConstTensorView<float, 1>(norm_f_), config_.layer_norm_epsilon,
             TensorView<float, 2>(normed.data(), normed.dimensions()), device);
    linear(ConstTensorView<float, 2>(normed), head(), std::nullopt,
           TensorView<float, 2>(logits.data(), normed.dimension(0), config_.vocab_size), device);
    return logits;
  }

  Tensor<float, 3> forward(const std::vector<std::int64_t>& ids, MambaLMCache* cache = nullptr,
                           LogitsFor which = LogitsFor::all_tokens, const Eigen::ThreadPoolDevice* device = nullptr) const {
    return forward(ConstTensorView<std::int64_t, 2>(ids.data(), 1, static_cast<Index>(ids.size())), cache, which, device);
  }

  // One decode step: the next token of each of the B sequences in `cache` → logits [B, V].
  Tensor<float, 2> step(const std::int64_t* ids, Index batch, MambaLMCache& cache,
                        const Eigen::ThreadPoolDevice* device = nullptr) const {
    const char* op = "MambaLM::step";
    check_cache(op, cache, batch);
    const Index Dm = config_.hidden_size;
    Tensor<float, 2> logits(batch, config_.vocab_size);
    if (batch == 0) return logits;
    Tensor<float, 2> hidden = embedding(ids, batch, ConstTensorView<float, 2>(embeddings_));  // [B, Dm]
    Tensor<float, 2> normed(batch, Dm), mixed(batch, Dm);
    MambaMixerScratch scratch;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      rms_norm(ConstTensorView<float, 2>(hidden), ConstTensorView<float, 1>(layers_[i].norm), config_.layer_norm_epsilon,
               TensorView<float, 2>(normed.data(), normed.dimensions()), device);
      std::visit([&](const auto& m) {
        m.step(ConstTensorView<float, 2>(normed), cache.layers[i], TensorView<float, 2>(mixed.data(), mixed.dimensions()),
               device, &scratch);
      }, layers_[i].mixer);
      hidden += mixed;
    }
    cache.seen_tokens += 1;
    rms_norm(ConstTensorView<float, 2>(hidden), ConstTensorView<float, 1>(norm_f_), config_.layer_norm_epsilon,
             TensorView<float, 2>(normed.data(), normed.dimensions()), device);
    linear(ConstTensorView<float, 2>(normed), head(), std::nullopt, TensorView<float, 2>(logits.data(), logits.dimensions()),
           device);
    return logits;
  }

  // Greedy decoding of one sequence: prefill over `prompt`, then up to max_new_tokens argmax steps
  // (stopping after config().eos_token_id when stop_at_eos). Returns the new ids. When given,
  // `on_token(id, logits_row)` sees each new id and the logits it was picked from.
  template <class OnToken = std::nullptr_t>
  std::vector<std::int64_t> generate_greedy(const std::vector<std::int64_t>& prompt, Index max_new_tokens,
                                            const Eigen::ThreadPoolDevice* device = nullptr, bool stop_at_eos = true,
                                            OnToken on_token = nullptr) const {
    const char* op = "MambaLM::generate_greedy";
    TOKENMIX_CHECK(!prompt.empty(), op, ": the prompt is empty (greedy decoding needs at least one token)");
    TOKENMIX_CHECK(max_new_tokens >= 0, op, ": max_new_tokens must be >= 0, got ", max_new_tokens);
    std::vector<std::int64_t> out;
    if (max_new_tokens == 0) return out;
    MambaLMCache cache = new_cache(1);
    Tensor<float, 3> logits = forward(prompt, &cache, LogitsFor::last_token, device);  // [1, 1, V]
    const float* row = logits.data();
    Tensor<float, 2> step_logits;
    for (Index t = 0; t < max_new_tokens; ++t) {
      const std::int64_t next = argmax(row, config_.vocab_size);
      out.push_back(next);
      if constexpr (!std::is_same_v<OnToken, std::nullptr_t>) on_token(next, row);
      if ((stop_at_eos && config_.eos_token_id && next == *config_.eos_token_id) || t + 1 == max_new_tokens) break;
      step_logits = step(&next, 1, cache, device);
      row = step_logits.data();
    }
    return out;
  }

  // The first index of the largest value (torch.argmax's tie rule); NaN is never picked over numbers.
  static std::int64_t argmax(const float* row, Index n) {
    Index best = 0;
    for (Index v = 1; v < n; ++v)
      if (row[v] > row[best] || (std::isnan(row[best]) && !std::isnan(row[v]))) best = v;
    return best;
  }

 private:
  struct Layer {
    Tensor<float, 1> norm;  // [d_model] RMSNorm weight (backbone.layers.{i}.norm.weight)
    std::variant<MambaMixer, Mamba2Mixer> mixer;  // by config().model_type
  };

  // backbone.layers.{i}.mixer.* of a Mamba2ForCausalLM, shapes from config.json.
  static Mamba2Mixer read_mamba2_mixer(const CheckpointReader& ckpt, const std::string& p, const MambaLMConfig& config,
                                       const Eigen::ThreadPoolDevice* device) {
    const Mamba2MixerConfig c = config.mamba2_mixer();
    const Index I = c.d_inner(), CD = c.conv_dim(), H = c.heads, Dm = c.d_model, R = c.in_proj_rows();
    Mamba2MixerWeights w;
    w.in_proj_weight = ckpt.read<2>(p + "in_proj.weight", Shape<2>{{R, Dm}});
    w.conv1d_weight = ckpt.read<3>(p + "conv1d.weight", Shape<3>{{CD, 1, c.d_conv}});
    w.dt_bias = ckpt.read<1>(p + "dt_bias", Shape<1>{{H}});
    w.A_log = ckpt.read<1>(p + "A_log", Shape<1>{{H}});
    w.D = ckpt.read<1>(p + "D", Shape<1>{{H}});
    w.norm_weight = ckpt.read<1>(p + "norm.weight", Shape<1>{{I}});
    w.out_proj_weight = ckpt.read<2>(p + "out_proj.weight", Shape<2>{{Dm, I}});
    if (c.use_conv_bias) w.conv1d_bias = ckpt.read<1>(p + "conv1d.bias", Shape<1>{{CD}});
    if (c.use_bias) {
      w.in_proj_bias = ckpt.read<1>(p + "in_proj.bias", Shape<1>{{R}});
      w.out_proj_bias = ckpt.read<1>(p + "out_proj.bias", Shape<1>{{Dm}});
    }
    return Mamba2Mixer(c, w, device);
  }

  ConstTensorView<float, 2> head() const {  // [V, d_model]
    return lm_head_ ? ConstTensorView<float, 2>(*lm_head_) : ConstTensorView<float, 2>(embeddings_);
  }

  void check_cache(const char* op, const MambaLMCache& cache, Index batch) const {
    TOKENMIX_CHECK(cache.layers.size() == layers_.size(), op, ": the cache has ", cache.layers.size(),
                   " layers, the model ", layers_.size(), " (make it with new_cache)");
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (const auto* m1 = std::get_if<MambaMixer>(&layers_[i].mixer))
        detail::check_mamba_mixer_cache(op, m1->config(), cache.layers[i], batch);
      else
        detail::check_mamba2_mixer_cache(op, std::get<Mamba2Mixer>(layers_[i].mixer).config(), cache.layers[i], batch);
    }
  }

  MambaLMConfig config_;
  Tensor<float, 2> embeddings_;             // [V, d_model]
  std::vector<Layer> layers_;
  Tensor<float, 1> norm_f_;                 // [d_model]
  std::optional<Tensor<float, 2>> lm_head_;  // [V, d_model] when not tied
};

}  // namespace tokenmix::blocks
