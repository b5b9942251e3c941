# docs/operators.md: tokenmix.A2MambaBackbone.
import numpy as np
import tokenmix

# snippet-begin
net = tokenmix.A2MambaBackbone(random_seed=1, image_size=64, dims=(16, 16, 32, 32), depths=(1, 1, 1, 1),
                               heads=(2, 2, 2, 2), kernel_size=(3, 3, 3, 1), projection=32, num_classes=10)
# the released Nano: tokenmix.A2MambaBackbone("nano.safetensors")
image = np.random.default_rng(0).standard_normal((1, 64, 64, 3), dtype=np.float32)   # channels last
features = net.features(image)          # 4 arrays [B, H/4, W/4, dims[0]] .. [B, H/32, W/32, dims[3]]
logits = net.logits(image)              # [B, num_classes]
# snippet-end
assert logits.shape == (1, 10) and features[3].shape == (1, 2, 2, 32)
