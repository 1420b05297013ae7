/* The tanh-family kernels (tanh, GELU with the tanh approximation, and their
 * backward): the scalar reference of the kernel-table entry tanh_act, and
 * amp__tanh_act, which splits a call into blocks over the context's threads
 * (elementwise: any thread count gives the same bits). The arithmetic is in
 * tanh_internal.h. */
#include "kernels_internal.h"
#include "tanh_internal.h"

/* Elements per block (one kernel call each). */
#define TANH_BLOCK 8192

void amp__tanh_act_scalar(int op, int dt, int gdt, size_t n, const void *v, const void *g,
                          void *y) {
  for (size_t i = 0; i < n; i++) {
    float x = amp__load_f32(v, dt, i), r;
    switch (op) {
    case AMP__TANH_FWD: r = amp__tanh_ref(x); break;
    case AMP__GELU_FWD: r = amp__gelu_ref(x); break;
    case AMP__TANH_BWD: r = amp__tanh_gmul(amp__load_f32(g, dt, i), amp__tanh_d_ref(x)); break;
    default: r = amp__tanh_gmul(amp__load_f32(g, dt, i), amp__gelu_d_ref(x)); break;
    }
    amp__store_f32(y, op <= AMP__GELU_FWD ? dt : gdt, i, r);
  }
}

void amp__tanh_act(amp_ctx *ctx, int op, int dt, int gdt, size_t n, const void *v, const void *g,
                   void *y) {
  const amp__kernels *kt = amp__kernels_of(ctx);
  const int ydt = op <= AMP__GELU_FWD ? dt : gdt;
  size_t nb = (n + TANH_BLOCK - 1) / TANH_BLOCK;
  int nt = amp__threads(ctx);
  if (nt > (int)nb) nt = nb > 0 ? (int)nb : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (size_t k = 0; k < nb; k++) {
    size_t i0 = k * TANH_BLOCK, len = n - i0 < TANH_BLOCK ? n - i0 : TANH_BLOCK;
    kt->tanh_act(op, dt, gdt, len, amp__at(v, dt, i0), g ? amp__at(g, dt, i0) : NULL,
                 (void *)amp__at(y, ydt, i0));
  }
}
