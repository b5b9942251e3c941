// docs/operators.md: blocks::MambaMixer.
#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

int main() {
  const Index Bt = 1, L = 24;
  // snippet-begin
  blocks::MambaMixerConfig c;                           // transformers' MambaConfig keys in comments
  c.d_model = 64, c.d_inner = 128, c.d_state = 16, c.d_conv = 4, c.dt_rank = 4;
  blocks::MambaMixerWeights w = blocks::random_mamba_mixer_weights(c, /*seed=*/1);  // or from a state dict
  blocks::MambaMixer mixer(w);                          // validates, packs the projections

  Tensor<float, 3> x(Bt, L, c.d_model);
  x.setRandom();
  Tensor<float, 3> y = mixer.forward(x);                // [B, L, d_model], fresh state
  blocks::MambaMixerCache cache = mixer.new_cache(Bt);  // conv_state [B, I, K-1], ssm_state [B, I, N]
  Tensor<float, 3> prefill = mixer.forward(x, &cache);
  Tensor<float, 2> token(Bt, c.d_model);
  token.setRandom();
  Tensor<float, 2> t = mixer.step(token, cache);        // [B, d_model], cache advanced by one token
  // snippet-end
  return y.dimension(2) == c.d_model && t.dimension(1) == c.d_model && prefill.dimension(1) == L ? 0 : 1;
}
