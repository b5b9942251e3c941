#pragma once
// The block products of the chunked SSD / Lightning Attention-2 form on the operand layouts of
// ssm::detail::SsdChunkedKernel, run through its micro-kernel tile (what BM_SSD_ChunkedMatmuls and
// BM_LightningAttention_ChunkMatmuls time: the products alone, without decays, masks or transposes).
// Per chunk of Qc tokens (rows of QP / PP floats; W = the kernel's vector width):
//   cb_product      CB [Qc, QP] = C · BT, lower triangle by row tiles (C: Qc rows of N floats c_rs
//                   apart; BT [N, QP]): SSD's C·Bᵀ per group, Lightning's Q·Kᵀ per head
//   head_products   Y [Qc, PP] = C · S + M · X (rows before each tile, then its lower triangle;
//                   X rows x_rs apart, M [Q, QP]), then S [N, PP] = 0.5·S + BT · Xw (Xw [Q, PP])

#include <algorithm>

#include "tokenmix/ssm/ssd_kernel.hpp"

namespace tokenmix::bench {

template <class Kernel>
void cb_product(Index Qc, Index N, Index QP, const float* C, Index c_rs, const float* BT, float* CB) {
  Kernel::cb_tiles(Qc, N, QP, C, c_rs, BT, CB);  // the kernel's own CB routine
}

template <class Kernel>
void head_products(Index Qc, Index N, Index QP, Index PP, const float* C, Index c_rs, float* S, const float* M,
                   const float* X, Index x_rs, const float* BT, const float* Xw, float* Y) {
  constexpr Index W = Kernel::W;
  constexpr int MR = Kernel::MR, NVMAX = Kernel::NVMAX;
  const Index pv = PP / W;
  for (Index l0 = 0; l0 < Qc; l0 += MR) {
    const int rows = static_cast<int>(std::min<Index>(MR, Qc - l0));
    for (Index c0 = 0; c0 < pv; c0 += NVMAX)
      Kernel::template dispatch<MR>(rows, static_cast<int>(std::min<Index>(NVMAX, pv - c0)), [&](auto R_, auto NV_) {
        constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
        Kernel::template tile<R, NV, true>(Y + l0 * PP + c0 * W, PP, nullptr, 0.0f,
                                           {C + l0 * c_rs, c_rs, S + c0 * W, PP, N}, nullptr,
                                           {M + l0 * QP, QP, X + c0 * W, x_rs, l0},
                                           {M + l0 * QP + l0, QP, X + l0 * x_rs + c0 * W, x_rs, R});
      });
  }
  for (Index n0 = 0; n0 < N; n0 += MR) {
    const int rows = static_cast<int>(std::min<Index>(MR, N - n0));
    for (Index c0 = 0; c0 < pv; c0 += NVMAX)
      Kernel::template dispatch<MR>(rows, static_cast<int>(std::min<Index>(NVMAX, pv - c0)), [&](auto R_, auto NV_) {
        constexpr int R = decltype(R_)::value, NV = decltype(NV_)::value;
        float* Sn = S + n0 * PP + c0 * W;
        Kernel::template tile<R, NV, false>(Sn, PP, Sn, 0.5f, {BT + n0 * QP, QP, Xw + c0 * W, PP, Qc}, nullptr,
                                            Kernel::kNone, Kernel::kNone);
      });
  }
}

}  // namespace tokenmix::bench
