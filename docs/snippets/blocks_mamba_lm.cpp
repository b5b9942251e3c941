// docs/operators.md: blocks::MambaLM.
#include "tokenmix/tokenmix.hpp"

using namespace tokenmix;

int main() {
  // snippet-begin
  blocks::MambaLMConfig config;                         // or MambaLM::load("mamba-130m-hf") (config.json + safetensors)
  config.vocab_size = 100, config.hidden_size = 32, config.num_hidden_layers = 2;
  config.intermediate_size = 64, config.time_step_rank = 2;
  blocks::MambaLM lm = blocks::MambaLM::random(config, /*seed=*/1);

  std::vector<std::int64_t> ids = lm.generate_greedy({3, 14, 15}, /*max_new_tokens=*/5);  // the new ids
  blocks::MambaLMCache cache = lm.new_cache(/*batch=*/1);
  Tensor<float, 3> logits = lm.forward(std::vector<std::int64_t>{3, 14, 15}, &cache);  // [1, L, vocab]
  const std::int64_t token = 9;
  Tensor<float, 2> next = lm.step(&token, 1, cache);    // [1, vocab]; cache.save(path) / MambaLMCache::load
  // snippet-end
  return logits.dimension(2) == 100 && next.dimension(1) == 100 && ids.size() <= 5 ? 0 : 1;
}
