#pragma once
// Umbrella header: every public header of tokenmix, nothing else.

#include "tokenmix/config.hpp"
#include "tokenmix/version.hpp"

#include "tokenmix/core/random.hpp"
#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"

#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"

#include "tokenmix/io/json.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/io/safetensors.hpp"

#include "tokenmix/reference/linear.hpp"
#include "tokenmix/reference/local_bidirectional_scan.hpp"
#include "tokenmix/reference/mamba_mixer.hpp"
#include "tokenmix/reference/rms_norm.hpp"
#include "tokenmix/reference/causal_conv1d.hpp"
#include "tokenmix/reference/selective_scan.hpp"
#include "tokenmix/reference/selective_scan_2d.hpp"
#include "tokenmix/reference/selective_state_update.hpp"
#include "tokenmix/reference/spatial_state_fusion.hpp"
#include "tokenmix/reference/ssd.hpp"

#include "tokenmix/ssm/causal_conv1d.hpp"
#include "tokenmix/ssm/selective_scan.hpp"
#include "tokenmix/ssm/local_bidirectional_scan.hpp"
#include "tokenmix/ssm/scan_path.hpp"
#include "tokenmix/ssm/selective_scan_2d.hpp"
#include "tokenmix/ssm/selective_state_update.hpp"
#include "tokenmix/ssm/spatial_state_fusion.hpp"
#include "tokenmix/ssm/ssd.hpp"

#include "tokenmix/blocks/embedding.hpp"
#include "tokenmix/blocks/linear.hpp"
#include "tokenmix/blocks/mamba2_mixer.hpp"
#include "tokenmix/blocks/mamba_lm.hpp"
#include "tokenmix/blocks/mamba_mixer.hpp"
#include "tokenmix/blocks/rms_norm.hpp"
