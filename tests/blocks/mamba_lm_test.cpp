// blocks::MambaLM against transformers: tiny random MambaForCausalLM checkpoints saved with
// save_pretrained (tests/data/make_mamba_fixture.py, transformers 5.17 / torch 2.11) with the logits
// and greedy continuation transformers computed. Plus every config key that changes the math, the
// sharded layout, the cache's save / load, batching, and the loader's errors.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>  // getpid: a per-process scratch directory

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "tokenmix/blocks/mamba_lm.hpp"
#include "tokenmix/core/threading.hpp"
#include "tokenmix/io/npy.hpp"

namespace tokenmix {
namespace {

namespace fs = std::filesystem;
using blocks::LogitsFor;
using blocks::MambaLM;
using blocks::MambaLMCache;

const std::string kFixtures = std::string(TOKENMIX_TEST_DATA_DIR) + "/mamba/";
// Mamba-1 checkpoints (tests/data/mamba) and Mamba-2 ones (tests/data/mamba2: "mamba2/<case>").
const std::vector<std::string> kCases = {"tied_auto_rank", "bias_untied_k3", "original_names", "../mamba2/tied_g1",
                                         "../mamba2/groups2_bias_untied"};

std::vector<std::int64_t> read_ids(const std::string& path) {
  const Tensor<float, 1> f = io::read_npy_float<1>(path);  // int64 ids < 2^24: exact as float
  std::vector<std::int64_t> ids(static_cast<std::size_t>(f.size()));
  for (Index i = 0; i < f.size(); ++i) ids[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(f(i));
  return ids;
}

// The bound: max |ours - transformers| <= 1e-4 · max |logit| (the logit scale).
::testing::AssertionResult logits_match(const float* ours, const Tensor<float, 2>& theirs, const std::string& what) {
  double scale = 0, worst = 0;
  Index at = 0;
  for (Index i = 0; i < theirs.size(); ++i) scale = std::max(scale, std::abs(double(theirs.data()[i])));
  for (Index i = 0; i < theirs.size(); ++i) {
    const double e = std::abs(double(ours[i]) - double(theirs.data()[i]));
    if (!(e <= worst)) worst = e, at = i;
  }
  if (worst <= 1e-4 * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max abs error " << worst << " at flat index " << at
                                       << " exceeds 1e-4 x logit scale " << scale;
}

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("tokenmix_mamba_lm_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Copies a fixture's config.json, replacing `from` by `to` in its text (must occur).
void copy_config(const std::string& src_case, const fs::path& dst, const std::string& from, const std::string& to) {
  std::string text = read_text(kFixtures + src_case + "/config.json");
  const auto pos = text.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  text.replace(pos, from.size(), to);
  write_text((dst / "config.json").string(), text);
}

// All tensors of a fixture as float, by name.
std::map<std::string, Tensor<float, 1>> read_all(const std::string& case_name) {
  const io::SafetensorsFile f(kFixtures + case_name + "/model.safetensors");
  std::map<std::string, Tensor<float, 1>> all;
  for (const std::string& n : f.names()) {
    Tensor<float, 1> t(f.info(n).numel);
    f.read_float_into(n, t.data(), t.size());
    all.emplace(n, std::move(t));
  }
  return all;
}

void write_tensors(const std::string& path, const io::SafetensorsFile& like, const std::map<std::string, Tensor<float, 1>>& all,
                   const std::vector<std::string>& names) {
  std::vector<io::SafetensorsEntry> entries;
  for (const std::string& n : names) entries.emplace_back(n, all.at(n).data(), like.info(n).shape);
  io::write_safetensors(path, entries);
}

class MambaLMFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(MambaLMFixture, PromptLogitsMatchTransformers) {
  const std::string dir = kFixtures + GetParam();
  const MambaLM lm = MambaLM::load(dir);
  const std::vector<std::int64_t> prompt = read_ids(dir + "/prompt_ids.npy");
  const Tensor<float, 2> expected = io::read_npy_float<2>(dir + "/prompt_logits.npy");  // [L, V]
  const Tensor<float, 3> logits = lm.forward(prompt);
  ASSERT_EQ(logits.dimension(1), expected.dimension(0));
  ASSERT_EQ(logits.dimension(2), expected.dimension(1));
  EXPECT_TRUE(logits_match(logits.data(), expected, GetParam() + " prompt logits"));
  // last_token returns the last row (its head is a GEMV, the all-rows head a GEMM: roundings differ).
  const Tensor<float, 3> last = lm.forward(prompt, nullptr, LogitsFor::last_token);
  Tensor<float, 2> last_row = logits.chip(0, 0).chip(logits.dimension(1) - 1, 0).reshape(std::array<Index, 2>{1, expected.dimension(1)});
  EXPECT_TRUE(testing::all_close(Tensor<float, 2>(last.chip(0, 0)), last_row, testing::tolerance::linear, "last_token"));
}

TEST_P(MambaLMFixture, GreedyDecodeMatchesTransformers) {
  const std::string dir = kFixtures + GetParam();
  const MambaLM lm = MambaLM::load(dir);
  const std::vector<std::int64_t> prompt = read_ids(dir + "/prompt_ids.npy");
  const std::vector<std::int64_t> expected = read_ids(dir + "/greedy_ids.npy");
  const Tensor<float, 2> expected_logits = io::read_npy_float<2>(dir + "/greedy_logits.npy");  // [T, V]
  const Index V = lm.config().vocab_size;
  std::vector<float> seen;
  const auto ids = lm.generate_greedy(prompt, static_cast<Index>(expected.size()), nullptr, /*stop_at_eos=*/false,
                                      [&](std::int64_t, const float* row) { seen.insert(seen.end(), row, row + V); });
  EXPECT_EQ(ids, expected);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(expected_logits.size()));
  EXPECT_TRUE(logits_match(seen.data(), expected_logits, GetParam() + " decode logits"));
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, MambaLMFixture, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string name = info.param;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
});

TEST(MambaLM, Mamba2ConfigKeys) {
  const MambaLM lm = MambaLM::load(kFixtures + "../mamba2/groups2_bias_untied");
  const blocks::MambaLMConfig& c = lm.config();
  EXPECT_TRUE(c.is_mamba2());
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.chunk_size, 4);
  EXPECT_FLOAT_EQ(c.time_step_max_limit, 0.5f);
  EXPECT_TRUE(std::isinf(MambaLM::load(kFixtures + "../mamba2/tied_g1").config().time_step_max_limit));  // {"__float__": "Infinity"}
}

TEST(MambaLM, ConfigKeysAreHonoured) {
  const MambaLM tied = MambaLM::load(kFixtures + "tied_auto_rank");
  const blocks::MambaLMConfig& c = tied.config();
  EXPECT_EQ(c.vocab_size, 67);
  EXPECT_EQ(c.hidden_size, 24);
  EXPECT_EQ(c.intermediate_size, 48);
  EXPECT_EQ(c.time_step_rank, 2);
  EXPECT_TRUE(c.tie_word_embeddings);
  const MambaLM untied = MambaLM::load(kFixtures + "bias_untied_k3");
  EXPECT_EQ(untied.config().conv_kernel, 3);
  EXPECT_EQ(untied.config().layer_norm_epsilon, 1e-6);
  EXPECT_TRUE(untied.config().use_bias);
  EXPECT_FALSE(untied.config().use_conv_bias);
  EXPECT_FALSE(untied.config().tie_word_embeddings);
  EXPECT_FALSE(MambaLM::load(kFixtures + "original_names").config().residual_in_fp32);

  // time_step_rank "auto" = ceil(24 / 16) = 2 and intermediate_size absent = expand · hidden_size: the
  // same model, so the same logits bit for bit.
  TempDir tmp("auto");
  fs::copy_file(kFixtures + "tied_auto_rank/model.safetensors", tmp.path / "model.safetensors");
  std::string text = read_text(kFixtures + "tied_auto_rank/config.json");
  text.replace(text.find("\"time_step_rank\": 2"), 19, "\"time_step_rank\": \"auto\"");
  text.replace(text.find("\"intermediate_size\": 48,"), 24, "");
  write_text((tmp.path / "config.json").string(), text);
  const MambaLM reloaded = MambaLM::load(tmp.str());
  EXPECT_EQ(reloaded.config().time_step_rank, 2);
  EXPECT_EQ(reloaded.config().intermediate_size, 48);
  const std::vector<std::int64_t> prompt = read_ids(kFixtures + "tied_auto_rank/prompt_ids.npy");
  EXPECT_TRUE(testing::bitwise_equal(reloaded.forward(prompt), tied.forward(prompt)));

  // layer_norm_epsilon changes the logits (it is read, not defaulted).
  TempDir eps("eps");
  fs::copy_file(kFixtures + "bias_untied_k3/model.safetensors", eps.path / "model.safetensors");
  copy_config("bias_untied_k3", eps.path, "\"layer_norm_epsilon\": 1e-06", "\"layer_norm_epsilon\": 0.5");
  const auto a = MambaLM::load(eps.str()).forward(prompt);
  const auto b = untied.forward(prompt);
  EXPECT_FALSE(testing::bitwise_equal(a, b));
}

// save_pretrained's sharded layout: model.safetensors.index.json + shards.
TEST(MambaLM, LoadsShardedCheckpoints) {
  TempDir tmp("sharded");
  const std::string src = kFixtures + "bias_untied_k3";
  fs::copy_file(src + "/config.json", tmp.path / "config.json");
  const io::SafetensorsFile f(src + "/model.safetensors");
  const auto all = read_all("bias_untied_k3");
  std::vector<std::string> first, second;
  std::string map;
  for (const std::string& n : f.names()) {
    const bool one = n.find("layers.1.") == std::string::npos && n.find("layers.2.") == std::string::npos;
    (one ? first : second).push_back(n);
    map += std::string(map.empty() ? "" : ",") + "\"" + n + "\":\"model-0000" + (one ? "1" : "2") + "-of-00002.safetensors\"";
  }
  write_tensors((tmp.path / "model-00001-of-00002.safetensors").string(), f, all, first);
  write_tensors((tmp.path / "model-00002-of-00002.safetensors").string(), f, all, second);
  write_text((tmp.path / "model.safetensors.index.json").string(), "{\"metadata\":{},\"weight_map\":{" + map + "}}");
  const std::vector<std::int64_t> prompt = read_ids(src + "/prompt_ids.npy");
  EXPECT_TRUE(testing::bitwise_equal(MambaLM::load(tmp.str()).forward(prompt), MambaLM::load(src).forward(prompt)));
}

// Prefill + steps == one forward over the whole sequence; the cache survives save / load and copies.
TEST(MambaLM, CacheStepsSaveAndLoad) {
  const MambaLM lm = MambaLM::load(kFixtures + "bias_untied_k3");
  const std::vector<std::int64_t> ids = {3, 14, 15, 9, 26, 5, 35, 8};
  const Tensor<float, 3> whole = lm.forward(ids);  // [1, 8, V]
  MambaLMCache cache = lm.new_cache(1);
  lm.forward(std::vector<std::int64_t>(ids.begin(), ids.begin() + 5), &cache, LogitsFor::last_token);
  EXPECT_EQ(cache.seen_tokens, 5);
  TempDir tmp("cache");
  const std::string path = (tmp.path / "cache.safetensors").string();
  cache.save(path);
  MambaLMCache loaded = MambaLMCache::load(path);
  EXPECT_EQ(loaded.seen_tokens, 5);
  MambaLMCache copy = cache;
  for (std::size_t t = 5; t < ids.size(); ++t) {
    const Tensor<float, 2> a = lm.step(&ids[t], 1, cache);
    const Tensor<float, 2> b = lm.step(&ids[t], 1, loaded);
    EXPECT_TRUE(testing::bitwise_equal(a, b)) << "t=" << t;
    const Tensor<float, 2> expected = whole.chip(0, 0).chip(static_cast<Index>(t), 0).reshape(std::array<Index, 2>{1, a.dimension(1)});
    EXPECT_TRUE(testing::all_close(a, expected, testing::tolerance::mamba_mixer, "step t=" + std::to_string(t)));
  }
  EXPECT_EQ(copy.seen_tokens, 5);  // the copy did not advance
  EXPECT_EQ(cache.seen_tokens, 8);

  write_text(path, "not a safetensors file at all");
  EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLMCache::load(path); }, "", "safetensors"));
  const Tensor<float, 1> one(1);
  io::write_safetensors(path, {io::SafetensorsEntry("x", one)}, {{"format", "other"}});
  EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLMCache::load(path); }, "MambaLMCache::load",
                                               "has format \"other\", expected \"tokenmix.mamba_cache\""));
  MambaLMCache short_cache = lm.new_cache(1);
  short_cache.layers.pop_back();
  EXPECT_TRUE(testing::throws_error_mentioning([&] { lm.step(&ids[0], 1, short_cache); }, "MambaLM::step",
                                               "the cache has 2 layers, the model 3"));
}

// Two sequences in one batch give each its own logits (and the batched GEMMs round per row).
TEST(MambaLM, BatchEqualsSeparateSequences) {
  const MambaLM lm = MambaLM::load(kFixtures + "tied_auto_rank");
  const std::vector<std::int64_t> a = {1, 2, 3, 4, 5, 6}, b = {60, 50, 40, 30, 20, 10};
  std::vector<std::int64_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  ThreadPool pool(2);
  const Tensor<float, 3> batched = lm.forward(ConstTensorView<std::int64_t, 2>(both.data(), 2, 6), nullptr,
                                              LogitsFor::all_tokens, pool.device());
  const Tensor<float, 3> first = batched.chip(0, 0).reshape(std::array<Index, 3>{1, 6, lm.config().vocab_size});
  const Tensor<float, 3> second = batched.chip(1, 0).reshape(std::array<Index, 3>{1, 6, lm.config().vocab_size});
  EXPECT_TRUE(testing::all_close(first, lm.forward(a), testing::tolerance::mamba_mixer, "sequence a"));
  EXPECT_TRUE(testing::all_close(second, lm.forward(b), testing::tolerance::mamba_mixer, "sequence b"));
}

TEST(MambaLM, GreedyStopsAtEos) {
  const std::string dir = kFixtures + "tied_auto_rank";
  const MambaLM lm = MambaLM::load(dir);
  const std::vector<std::int64_t> prompt = read_ids(dir + "/prompt_ids.npy");
  const std::vector<std::int64_t> greedy = read_ids(dir + "/greedy_ids.npy");
  // Make the third generated id the end-of-sequence token: generation stops right after it.
  TempDir tmp("eos");
  fs::copy_file(dir + "/model.safetensors", tmp.path / "model.safetensors");
  copy_config("tied_auto_rank", tmp.path, "\"eos_token_id\": 0", "\"eos_token_id\": " + std::to_string(greedy[2]));
  const auto ids = MambaLM::load(tmp.str()).generate_greedy(prompt, 8);
  const auto stop = std::find(greedy.begin(), greedy.end(), greedy[2]);  // its first occurrence
  EXPECT_EQ(ids, std::vector<std::int64_t>(greedy.begin(), stop + 1));
  EXPECT_TRUE(lm.generate_greedy(prompt, 0).empty());
  EXPECT_TRUE(testing::throws_error_mentioning([&] { lm.generate_greedy({}, 3); }, "MambaLM::generate_greedy",
                                               "the prompt is empty"));
}

TEST(MambaLM, RejectsBadCheckpoints) {
  const std::string src = "bias_untied_k3";
  struct Case {
    std::string from, to, op, fragment;
  };
  const std::vector<Case> cases = {
      {"\"model_type\": \"mamba\"", "\"model_type\": \"mamba3\"", "MambaLMConfig",
       "model_type is \"mamba3\", expected \"mamba\" (MambaForCausalLM) or \"mamba2\""},
      {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "MambaLMConfig", "only \"silu\" is supported"},
      {"\"state_size\": 7", "\"state_size\": 0", "MambaLMConfig", "must be positive"},
      {"\"hidden_size\": 20", "\"hidden_size\": 21", "MambaLM::load",
       "tensor 'backbone.embeddings.weight' has shape [53, 20], but config.json implies [53, 21]"},
      {"\"state_size\": 7", "\"state_size\": 6", "MambaLM::load",
       "tensor 'backbone.layers.0.mixer.x_proj.weight' has shape [17, 40], but config.json implies [15, 40]"},
      {"\"use_conv_bias\": false", "\"use_conv_bias\": true", "MambaLM::load",
       "the checkpoint has no tensor 'backbone.layers.0.mixer.conv1d.bias'"},
      {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"no\"", "", "tie_word_embeddings"},
      {"\"vocab_size\": 53", "\"vocab_size\": 53,,", "", "config.json"},
  };
  for (const Case& k : cases) {
    TempDir tmp("bad");
    fs::copy_file(kFixtures + src + "/model.safetensors", tmp.path / "model.safetensors");
    copy_config(src, tmp.path, k.from, k.to);
    EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLM::load(tmp.str()); }, k.op, k.fragment)) << k.to;
  }
  TempDir empty("empty");
  fs::copy_file(kFixtures + src + "/config.json", empty.path / "config.json");
  EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLM::load(empty.str()); }, "MambaLM::load",
                                               "has neither model.safetensors nor model.safetensors.index.json"));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLM::load(empty.str() + "/nowhere"); }, "", "config.json"));
  // lm_head.weight missing from an untied checkpoint.
  const io::SafetensorsFile f(kFixtures + src + "/model.safetensors");
  std::vector<std::string> names;
  for (const std::string& n : f.names())
    if (n != "lm_head.weight") names.push_back(n);
  write_tensors((empty.path / "model.safetensors").string(), f, read_all(src), names);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { MambaLM::load(empty.str()); }, "MambaLM::load",
                                               "the checkpoint has no tensor 'lm_head.weight'"));
  // Token ids out of the vocabulary.
  const MambaLM lm = MambaLM::load(kFixtures + src);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { lm.forward(std::vector<std::int64_t>{1, 53}); }, "embedding",
                                               "ids[1] = 53 is out of range for a vocabulary of V=53"));
}

}  // namespace
}  // namespace tokenmix
