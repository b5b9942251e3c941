#pragma once
// Umbrella header: every public header of tokenmix, nothing else.

#include "tokenmix/config.hpp"
#include "tokenmix/version.hpp"

#include "tokenmix/core/shape.hpp"
#include "tokenmix/core/tensor.hpp"
#include "tokenmix/core/threading.hpp"

#include "tokenmix/simd/activations.hpp"
#include "tokenmix/simd/arch.hpp"
#include "tokenmix/simd/exp.hpp"

#include "tokenmix/io/json.hpp"
#include "tokenmix/io/npy.hpp"
#include "tokenmix/io/safetensors.hpp"

#include "tokenmix/reference/selective_scan.hpp"

#include "tokenmix/ssm/selective_scan.hpp"
