/* GEMM driver. PLACEHOLDER until the packed, blocked kernel lands. */
#include "../core/internal.h"

amp_status amp_gemm(amp_ctx *ctx, amp_trans ta, amp_trans tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const void *a, amp_dtype a_type, int64_t lda, const void *b,
                    amp_dtype b_type, int64_t ldb, float beta, void *c, amp_dtype c_type,
                    int64_t ldc, const amp_epilogue *epilogue) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)a_type, (void)lda;
  (void)b, (void)b_type, (void)ldb, (void)beta, (void)c, (void)c_type, (void)ldc, (void)epilogue;
  return amp__error(ctx, AMP_ERR_UNSUPPORTED, "amp_gemm: not implemented yet");
}
