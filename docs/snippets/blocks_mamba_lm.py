# docs/operators.md: tokenmix.MambaLM.
import os
import numpy as np
import tokenmix

model_dir = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mamba", "bias_untied_k3")
# snippet-begin
lm = tokenmix.MambaLM.load(model_dir, threads=2)       # a save_pretrained dir (config.json + safetensors)
new_ids = lm.generate_greedy([3, 14, 15], 8)           # a list of the new ids
logits, cache = lm.forward(np.array([[3, 14, 15]]), cache=lm.new_cache(1))   # [1, L, vocab]
step_logits, cache = lm.step(np.array([9]), cache)     # [1, vocab]
# snippet-end
assert logits.shape[:2] == (1, 3) and step_logits.shape == (1, lm.vocab_size)
