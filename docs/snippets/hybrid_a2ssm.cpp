// docs/operators.md: hybrid::A2ssm.
#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

int main() {
  blocks::A2MambaConfig cfg;
  cfg.image_size = 96, cfg.dims = {16, 16, 16, 16}, cfg.depths = {1, 1, 1, 1};
  cfg.heads = {2, 2, 2, 2}, cfg.kernel_size = {3, 3, 3, 3}, cfg.projection = 32, cfg.num_classes = 10;
  io::SafetensorsFile ckpt = blocks::a2mamba_random_checkpoint(cfg, 7);
  blocks::A2MambaBlockWeights bw = blocks::A2MambaBlockWeights::load(ckpt, "layers.0.blocks.0.", cfg.mixer(0), cfg.ffn_dim(0));
  const hybrid::A2ssmWeights& weights = bw.token_mixer.ssm;
  // snippet-begin
  hybrid::A2ssmConfig c;                                // C 16, 2 heads, K 3, N 1 as released
  c.channels = 16, c.heads = 2, c.kernel_size = 3, c.d_state = 1;
  hybrid::A2ssm a2ssm(c, weights);                      // hybrid::A2ssmWeights: the released A2SSM state dict
  const Index Bt = 1, H = 12, W = 12, K2 = c.kernel_size * c.kernel_size;
  Tensor<float, 4> x_ms(Bt, H, W, c.channels);          // MASS's multi-scale output
  Tensor<float, 5> attn1(Bt, H, W, c.heads / 2, K2), attn2(Bt, H, W, c.heads / 2, K2);  // post-softmax maps
  x_ms.setRandom(), attn1.setConstant(1.0f / float(K2)), attn2.setConstant(1.0f / float(K2));
  const std::array<Index, 2> dil = hybrid::mass_dilation(H, W, c.kernel_size);  // (min(H/K, K), min(W/K, K))
  Tensor<float, 4> y = a2ssm.forward(x_ms, attn1, attn2, dil);  // [B, H, W, C]
  // snippet-end
  return y.dimension(3) == 16 ? 0 : 1;
}
