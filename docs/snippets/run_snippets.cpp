// Every C++ snippet of docs/operators.md in one program (one translation unit: the library's
// headers are parsed and its kernels instantiated once, not once per snippet). Each snippet file
// is a standalone program; here its main() is renamed and the file wrapped in a namespace of its
// own, then every snippet is run. Exit status: the number of snippets that failed.
// Generated list: keep it in step with the *.cpp files of this directory (CMake checks).

#include <cstdio>

#include "tokenmix/tokenmix.hpp"  // before the namespaces below: the snippets' own include is then a no-op
#include "snippet_support.hpp"  // likewise: fill / rnd at global scope, found from every snippet namespace

#define main run
namespace snippet_attention_attention {
#include "attention_attention.cpp"
}  // namespace snippet_attention_attention
namespace snippet_attention_block_sparse_attention {
#include "attention_block_sparse_attention.cpp"
}  // namespace snippet_attention_block_sparse_attention
namespace snippet_attention_content_sparse {
#include "attention_content_sparse.cpp"
}  // namespace snippet_attention_content_sparse
namespace snippet_attention_local_attention {
#include "attention_local_attention.cpp"
}  // namespace snippet_attention_local_attention
namespace snippet_attention_neighborhood_attention {
#include "attention_neighborhood_attention.cpp"
}  // namespace snippet_attention_neighborhood_attention
namespace snippet_attention_neighborhood_split {
#include "attention_neighborhood_split.cpp"
}  // namespace snippet_attention_neighborhood_split
namespace snippet_blocks_a2mamba {
#include "blocks_a2mamba.cpp"
}  // namespace snippet_blocks_a2mamba
namespace snippet_blocks_depthwise_conv2d {
#include "blocks_depthwise_conv2d.cpp"
}  // namespace snippet_blocks_depthwise_conv2d
namespace snippet_blocks_layer_norm {
#include "blocks_layer_norm.cpp"
}  // namespace snippet_blocks_layer_norm
namespace snippet_blocks_linear {
#include "blocks_linear.cpp"
}  // namespace snippet_blocks_linear
namespace snippet_blocks_mamba_lm {
#include "blocks_mamba_lm.cpp"
}  // namespace snippet_blocks_mamba_lm
namespace snippet_blocks_mamba_mixer {
#include "blocks_mamba_mixer.cpp"
}  // namespace snippet_blocks_mamba_mixer
namespace snippet_blocks_rms_norm {
#include "blocks_rms_norm.cpp"
}  // namespace snippet_blocks_rms_norm
namespace snippet_hybrid_a2ssm {
#include "hybrid_a2ssm.cpp"
}  // namespace snippet_hybrid_a2ssm
namespace snippet_hybrid_h3 {
#include "hybrid_h3.cpp"
}  // namespace snippet_hybrid_h3
namespace snippet_hybrid_mass {
#include "hybrid_mass.cpp"
}  // namespace snippet_hybrid_mass
namespace snippet_hybrid_seqboat {
#include "hybrid_seqboat.cpp"
}  // namespace snippet_hybrid_seqboat
namespace snippet_linear_lightning_attention {
#include "linear_lightning_attention.cpp"
}  // namespace snippet_linear_lightning_attention
namespace snippet_linear_linear_attention {
#include "linear_linear_attention.cpp"
}  // namespace snippet_linear_linear_attention
namespace snippet_linear_retention {
#include "linear_retention.cpp"
}  // namespace snippet_linear_retention
namespace snippet_linear_simple_gla {
#include "linear_simple_gla.cpp"
}  // namespace snippet_linear_simple_gla
namespace snippet_ssm_causal_conv1d {
#include "ssm_causal_conv1d.cpp"
}  // namespace snippet_ssm_causal_conv1d
namespace snippet_ssm_diagonal_ssm {
#include "ssm_diagonal_ssm.cpp"
}  // namespace snippet_ssm_diagonal_ssm
namespace snippet_ssm_local_bidirectional_scan {
#include "ssm_local_bidirectional_scan.cpp"
}  // namespace snippet_ssm_local_bidirectional_scan
namespace snippet_ssm_scan_2d {
#include "ssm_scan_2d.cpp"
}  // namespace snippet_ssm_scan_2d
namespace snippet_ssm_selective_scan {
#include "ssm_selective_scan.cpp"
}  // namespace snippet_ssm_selective_scan
namespace snippet_ssm_selective_scan_states {
#include "ssm_selective_scan_states.cpp"
}  // namespace snippet_ssm_selective_scan_states
namespace snippet_ssm_selective_state_update {
#include "ssm_selective_state_update.cpp"
}  // namespace snippet_ssm_selective_state_update
namespace snippet_ssm_spatial_state_fusion {
#include "ssm_spatial_state_fusion.cpp"
}  // namespace snippet_ssm_spatial_state_fusion
namespace snippet_ssm_ssd {
#include "ssm_ssd.cpp"
}  // namespace snippet_ssm_ssd
#undef main

int main() {
  struct Snippet {
    const char* name;
    int (*run)();
  };
  const Snippet snippets[] = {
      {"attention_attention", &snippet_attention_attention::run},
      {"attention_block_sparse_attention", &snippet_attention_block_sparse_attention::run},
      {"attention_content_sparse", &snippet_attention_content_sparse::run},
      {"attention_local_attention", &snippet_attention_local_attention::run},
      {"attention_neighborhood_attention", &snippet_attention_neighborhood_attention::run},
      {"attention_neighborhood_split", &snippet_attention_neighborhood_split::run},
      {"blocks_a2mamba", &snippet_blocks_a2mamba::run},
      {"blocks_depthwise_conv2d", &snippet_blocks_depthwise_conv2d::run},
      {"blocks_layer_norm", &snippet_blocks_layer_norm::run},
      {"blocks_linear", &snippet_blocks_linear::run},
      {"blocks_mamba_lm", &snippet_blocks_mamba_lm::run},
      {"blocks_mamba_mixer", &snippet_blocks_mamba_mixer::run},
      {"blocks_rms_norm", &snippet_blocks_rms_norm::run},
      {"hybrid_a2ssm", &snippet_hybrid_a2ssm::run},
      {"hybrid_h3", &snippet_hybrid_h3::run},
      {"hybrid_mass", &snippet_hybrid_mass::run},
      {"hybrid_seqboat", &snippet_hybrid_seqboat::run},
      {"linear_lightning_attention", &snippet_linear_lightning_attention::run},
      {"linear_linear_attention", &snippet_linear_linear_attention::run},
      {"linear_retention", &snippet_linear_retention::run},
      {"linear_simple_gla", &snippet_linear_simple_gla::run},
      {"ssm_causal_conv1d", &snippet_ssm_causal_conv1d::run},
      {"ssm_diagonal_ssm", &snippet_ssm_diagonal_ssm::run},
      {"ssm_local_bidirectional_scan", &snippet_ssm_local_bidirectional_scan::run},
      {"ssm_scan_2d", &snippet_ssm_scan_2d::run},
      {"ssm_selective_scan", &snippet_ssm_selective_scan::run},
      {"ssm_selective_scan_states", &snippet_ssm_selective_scan_states::run},
      {"ssm_selective_state_update", &snippet_ssm_selective_state_update::run},
      {"ssm_spatial_state_fusion", &snippet_ssm_spatial_state_fusion::run},
      {"ssm_ssd", &snippet_ssm_ssd::run},
  };
  int failed = 0;
  for (const Snippet& s : snippets) {
    int status = 1;
    try {
      status = s.run();
    } catch (const std::exception& e) {
      std::printf("%s: exception: %s\n", s.name, e.what());
    }
    std::printf("%-40s %s\n", s.name, status == 0 ? "ok" : "FAILED");
    failed += status != 0;
  }
  std::printf("%d of %zu snippets failed\n", failed, sizeof(snippets) / sizeof(snippets[0]));
  return failed;
}
