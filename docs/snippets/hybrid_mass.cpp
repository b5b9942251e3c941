// docs/operators.md: hybrid::Mass (A2Mamba's MASS token mixer).
#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

int main() {
  // snippet-begin
  blocks::A2MambaConfig cfg;                            // a small A2Mamba: MASS of stage 1 has C 16, 2 heads, K 3
  cfg.image_size = 96, cfg.dims = {16, 16, 16, 16}, cfg.depths = {1, 1, 1, 1};
  cfg.heads = {2, 2, 2, 2}, cfg.kernel_size = {3, 3, 3, 3}, cfg.projection = 32, cfg.num_classes = 10;
  io::SafetensorsFile ckpt = blocks::a2mamba_random_checkpoint(cfg, /*seed=*/7);  // or the released one
  blocks::A2MambaBlockWeights bw =
      blocks::A2MambaBlockWeights::load(ckpt, "layers.0.blocks.0.", cfg.mixer(0), cfg.ffn_dim(0));

  hybrid::Mass mass(cfg.mixer(0), bw.token_mixer);      // hybrid::MassWeights, the released names
  Tensor<float, 4> x(1, 24, 24, 16);                    // the block's normalised input [B, H, W, C]
  x.setRandom();
  Tensor<float, 4> y = mass.forward(x);                 // [B, H, W, C]
  const Tensor<float, 5>& a1 = mass.attn1();            // [B, H, W, nh/2, K*K] post-softmax map
  // snippet-end
  return y.dimension(3) == 16 && a1.dimension(4) == 9 ? 0 : 1;
}
