// blocks::A2MambaBlock against its oracle (ref::a2mamba_block: the released Block's loops in double
// around ref::mass), local (A2SSM) and global (stage 4) blocks; blocks::A2MambaBackbone against a
// PyTorch transcription of the released model (tests/data/a2mamba/tiny, made by
// tests/data/make_a2mamba_fixture.py: every stage's features and the logits); the Nano
// configuration's parameter count; threads bitwise; bad checkpoints and inputs.

#include <gtest/gtest.h>

#include <string>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/fixture.hpp"
#include "support/random.hpp"
#include "tokenmix/blocks/a2mamba.hpp"
#include "tokenmix/reference/a2mamba.hpp"

namespace tokenmix {
namespace a2mamba_test {

using testing::Rng;
using testing::tolerance::a2mamba;

blocks::A2MambaConfig small_config() {
  blocks::A2MambaConfig c;
  c.image_size = 96, c.dims = {16, 16, 24, 16}, c.depths = {1, 1, 1, 1}, c.heads = {2, 4, 2, 2};
  c.kernel_size = {3, 5, 3, 3}, c.mlp_ratios = {2, 2, 1.5, 2}, c.projection = 8, c.num_classes = 5;
  return c;
}

TEST(A2MambaBlockTest, MatchesOracle) {
  const blocks::A2MambaConfig cfg = small_config();
  const io::SafetensorsFile ckpt = blocks::a2mamba_random_checkpoint(cfg, 3);
  struct Case { int stage; Index batch, height, width; };
  for (const Case& c : {Case{0, 2, 11, 9}, Case{1, 1, 12, 15}, Case{2, 1, 7, 8}, Case{3, 1, 3, 3}, Case{3, 2, 4, 5}}) {
    const hybrid::MassConfig m = cfg.mixer(c.stage);
    const Index F = cfg.ffn_dim(c.stage);
    const blocks::A2MambaBlockWeights w =
        blocks::A2MambaBlockWeights::load(ckpt, "layers." + std::to_string(2 * c.stage) + ".blocks.0.", m, F);
    Rng rng(c.stage * 10 + c.height);
    const Tensor<float, 4> x = testing::random_normal<4>({c.batch, c.height, c.width, m.channels}, 0.f, 1.f, rng);
    blocks::A2MambaBlock block(m, F, w);
    const std::string what = "stage " + std::to_string(c.stage) + " " + std::to_string(c.height) + "x" + std::to_string(c.width);
    EXPECT_TRUE(testing::all_close(block.forward(x), ref::a2mamba_block<double>(m, F, w, x), a2mamba, what));
  }
}

TEST(A2MambaBackboneTest, MatchesTheReleasedModel) {
  const std::string dir = testing::fixture_dir("a2mamba", "tiny");
  // The fixture is committed: its absence is a failure, as for every fixture test.
  ASSERT_TRUE(testing::fixture_has("a2mamba", "tiny", "logits")) << "missing fixture a2mamba/tiny";
  blocks::A2MambaConfig c;
  c.image_size = 96, c.dims = {8, 16, 16, 24}, c.depths = {1, 1, 2, 1}, c.heads = {2, 2, 2, 2};
  c.kernel_size = {3, 3, 3, 3}, c.mlp_ratios = {2, 2, 2, 2}, c.projection = 32, c.num_classes = 10;
  const io::SafetensorsFile ckpt(dir + "model.safetensors");
  const Tensor<float, 4> image = testing::load_fixture<4>("a2mamba", "tiny", "image");
  blocks::A2MambaBackbone net(c, ckpt);
  const std::array<Tensor<float, 4>, 4> features = net.features(image);
  for (int s = 0; s < 4; ++s)
    EXPECT_TRUE(testing::check_fixture(features[std::size_t(s)], testing::load_fixture<4>("a2mamba", "tiny", "features_" + std::to_string(s)),
                                       a2mamba, "features " + std::to_string(s)));
  const Tensor<float, 2> logits = net.logits(image);
  EXPECT_TRUE(testing::check_fixture(logits, testing::load_fixture<2>("a2mamba", "tiny", "logits"), a2mamba, "logits"));
  ThreadPool pool(3);
  blocks::A2MambaBackbone threaded(c, ckpt, pool.device());
  EXPECT_TRUE(testing::bitwise_equal(threaded.logits(image), logits, "3 threads"));
  // With a profile: the same numbers, and the time of every operator kind of the network recorded.
  OpProfile profile;
  net.set_profile(&profile);
  EXPECT_TRUE(testing::bitwise_equal(net.features(image)[3], features[3], "profiled"));
  for (const char* op : {"conv3x3_bn", "depthwise_conv2d", "layer_norm", "linear", "gelu", "rope_2d",
                         "neighborhood_attention_weights", "neighborhood_av", "selective_scan_states",
                         "state_fusion_readout", "global_attention"})
    EXPECT_GT(profile.seconds().count(op), 0u) << op;
  EXPECT_GT(profile.total(), 0.0);
}

// The Nano configuration has the released model's 4.2 M parameters (spec §4: 4.20 M; rpb.1 is rpb.0).
TEST(A2MambaBackboneTest, NanoParameterCount) {
  Index total = 0;
  for (const blocks::A2MambaParameter& p : blocks::a2mamba_parameters(blocks::A2MambaConfig::nano())) {
    if (p.init == blocks::A2MambaParameter::Init::tied_rpb || p.name.find("running_") != std::string::npos) continue;
    Index n = 1;
    for (Index d : p.shape) n *= d;
    total += n;
  }
  EXPECT_NEAR(double(total) / 1e6, 4.20, 0.005) << total;
}

TEST(A2MambaBackboneTest, RejectsBadCheckpointsAndInputs) {
  const blocks::A2MambaConfig cfg = small_config();
  const io::SafetensorsFile ckpt = blocks::a2mamba_random_checkpoint(cfg, 5);
  const std::string op = "A2MambaBackbone";
  blocks::A2MambaConfig wider = cfg;
  wider.dims[1] = 32;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { blocks::A2MambaBackbone(wider, ckpt); }, op, "parameter 'layers.1.0.weight' has shape [16, 16, 3, 3], expected [32, 16, 3, 3]"));
  blocks::A2MambaConfig deeper = cfg;
  deeper.depths[2] = 2;
  EXPECT_TRUE(testing::throws_error_mentioning([&] { blocks::A2MambaBackbone(deeper, ckpt); }, op, "the checkpoint has no parameter 'layers.4.blocks.1.cpe1.weight'"));
  // An untied rpb.1.
  std::vector<Tensor<float, 1>> keep;
  std::vector<io::SafetensorsEntry> entries;
  for (const blocks::A2MambaParameter& p : blocks::a2mamba_parameters(cfg)) {
    Index n = 1;
    for (Index d : p.shape) n *= d;
    keep.emplace_back(n);
    ckpt.read_float_into(p.name, keep.back().data(), n);
    if (p.name == "layers.2.blocks.0.token_mixer.rpb.1") keep.back()(0) += 1.f;
  }
  std::size_t i = 0;
  for (const blocks::A2MambaParameter& p : blocks::a2mamba_parameters(cfg)) entries.emplace_back(p.name, keep[i++].data(), p.shape);
  const io::SafetensorsFile untied = io::SafetensorsFile::from_bytes(io::serialize_safetensors(entries));
  EXPECT_TRUE(testing::throws_error_mentioning([&] { blocks::A2MambaBackbone(cfg, untied); }, op, "'layers.2.blocks.0.token_mixer.rpb.1' differs from rpb.0"));
  blocks::A2MambaBackbone net(cfg, ckpt);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { net.features(Tensor<float, 4>(1, 96, 96, 4)); }, "A2MambaBackbone::features", "expected [B, H, W, in_chans=3]"));
  Tensor<float, 4> small(1, 64, 64, 3);
  small.setConstant(0.1f);
  EXPECT_TRUE(testing::throws_error_mentioning([&] { net.features(small); }, "A2MambaBackbone::features", "stage 4 gets a 2x2 map, smaller than its window 3"));
}

}  // namespace a2mamba_test
}  // namespace tokenmix
