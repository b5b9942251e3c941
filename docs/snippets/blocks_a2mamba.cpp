// docs/operators.md: blocks::A2MambaBackbone.
#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

int main() {
  // snippet-begin
  blocks::A2MambaConfig cfg;                            // A2MambaConfig::nano() is the released Nano
  cfg.image_size = 64, cfg.dims = {16, 16, 32, 32}, cfg.depths = {1, 1, 1, 1};
  cfg.heads = {2, 2, 2, 2}, cfg.kernel_size = {3, 3, 3, 1}, cfg.projection = 32, cfg.num_classes = 10;
  // the released checkpoint: io::SafetensorsFile("nano.safetensors") (converted state dict)
  blocks::A2MambaBackbone net(cfg, blocks::a2mamba_random_checkpoint(cfg, /*seed=*/1));

  Tensor<float, 4> image(1, 64, 64, 3);                 // [B, H, W, 3], channels last
  image.setRandom();
  std::array<Tensor<float, 4>, 4> f = net.features(image);  // [B, H/4, W/4, dims[0]] .. [B, H/32, W/32, dims[3]]
  Tensor<float, 2> logits = net.logits(image);          // [B, num_classes]
  OpProfile profile;
  net.set_profile(&profile);                            // time per operator of the next calls
  // snippet-end
  return f[3].dimension(3) == 32 && logits.dimension(1) == 10 ? 0 : 1;
}
