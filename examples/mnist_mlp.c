/* The reference example: an MLP 784 → 1024 → ReLU → 10 trained on MNIST with
 * Adam (lr 1e-3), cross-entropy and batch 128, in FP16 mixed precision with
 * dynamic loss scaling. It reads line for line like its PyTorch original:
 *
 *   model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))
 *   opt = torch.optim.Adam(model.parameters(), lr=1e-3)
 *   scaler = torch.cuda.amp.GradScaler()
 *   for epoch in range(epochs):
 *       for x, y in loader:
 *           with torch.autocast("cuda", dtype=torch.float16):
 *               loss = F.cross_entropy(model(x), y)
 *           scaler.scale(loss).backward()
 *           scaler.step(opt)
 *           scaler.update()
 *           opt.zero_grad()
 *
 * Usage: mnist_mlp [DIR [EPOCHS]]   (DIR defaults to data/mnist; fetch it with
 * scripts/fetch-mnist). */
#include "ampc.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "data/mnist";
  int epochs = argc > 2 ? atoi(argv[2]) : 1;
  if (epochs < 1) {
    fprintf(stderr, "mnist_mlp: EPOCHS must be a positive number\n");
    return 2;
  }
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 2});
  amp_dataset *train = NULL, *test = NULL;
  if (amp_mnist_load(ctx, dir, 1, &train) != AMP_OK ||
      amp_mnist_load(ctx, dir, 0, &test) != AMP_OK) {
    fprintf(stderr, "mnist_mlp: %s\n", amp_ctx_error(ctx));
    amp_ctx_free(ctx);
    return 1;
  }

  /* model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10)) */
  amp_rng rng;
  amp_rng_seed(&rng, 0);
  amp_module *layers[] = {amp_nn_linear(ctx, &rng, 784, 1024, 1), amp_nn_relu(ctx),
                          amp_nn_linear(ctx, &rng, 1024, 10, 1)};
  amp_module *model = amp_nn_sequential(ctx, 3, layers);

  /* opt = torch.optim.Adam(model.parameters(), lr=1e-3), with F16 working copies */
  amp_optim_params op = amp_optim_defaults(AMP_OPTIM_ADAM);
  op.lr = 1e-3f;
  op.work_dtype = AMP_F16;
  amp_optim *opt = amp_optim_create(ctx, model, &op);

  /* scaler = GradScaler() */
  amp_scaler_params sp = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  amp_scaler *scaler = amp_scaler_create(ctx, &sp);

  /* loader = DataLoader(train, batch_size=128, shuffle=True), batches in F16 */
  amp_loader *loader =
      amp_loader_create(ctx, train, &(amp_loader_params){128, 1, 0, 0, AMP_F16, 1});
  if (!model || !opt || !scaler || !loader) {
    fprintf(stderr, "mnist_mlp: %s\n", amp_ctx_error(ctx));
    return 1;
  }

  const int log_every = 100; /* a progress line every 100 steps */
  const int64_t steps = amp_loader_batches_per_epoch(loader);
  for (int epoch = 0; epoch < epochs; epoch++) {
    amp_tensor *x, *y;
    float loss_value = 0;
    for (int64_t step = 1;; step++) {
      amp_ctx_step_reset(ctx); /* frees the last step's activations */
      if (amp_loader_next(loader, &x, &y) != 1) break;

      amp_autocast_begin(ctx, AMP_F16); /* with torch.autocast(dtype=torch.float16): */
      amp_tensor *loss = amp_cross_entropy(ctx, amp_module_forward(ctx, model, x), y);
      amp_autocast_end(ctx);

      amp_backward(ctx, amp_scaler_scale(scaler, loss)); /* scaler.scale(loss).backward() */
      amp_scaler_step(scaler, opt);                      /* scaler.step(opt) */
      amp_scaler_update(scaler);                         /* scaler.update() */
      amp_optim_zero_grad(opt);                          /* opt.zero_grad() */
      if (loss) loss_value = *(float *)loss->data;
      if (step % log_every == 0) {
        printf("epoch %d step %lld/%lld: loss %.4f, loss scale %g\n", epoch + 1, (long long)step,
               (long long)steps, (double)loss_value, (double)amp_scaler_get_scale(scaler));
        fflush(stdout);
      }
    }
    if (amp_ctx_status(ctx) != AMP_OK) break;

    /* Test accuracy, without gradients, under the same autocast policy. */
    amp_loader *tl = amp_loader_create(ctx, test, &(amp_loader_params){1000, 0, 0, 0, AMP_F16, 1});
    long correct = 0, total = 0;
    amp_no_grad_begin(ctx);
    while (tl && amp_loader_next(tl, &x, &y) == 1) {
      amp_autocast_begin(ctx, AMP_F16);
      amp_tensor *logits = amp_module_forward(ctx, model, x);
      amp_autocast_end(ctx);
      if (!logits) break;
      float row[10];
      for (int64_t i = 0; i < logits->shape[0]; i++) {
        amp_convert(row, AMP_F32, (amp_f16 *)logits->data + i * 10, AMP_F16, 10);
        int best = 0;
        for (int j = 1; j < 10; j++)
          if (row[j] > row[best]) best = j;
        correct += best == ((int32_t *)y->data)[i];
        total++;
      }
      amp_ctx_step_reset(ctx);
    }
    amp_no_grad_end(ctx);
    amp_loader_free(tl);
    printf("epoch %d: loss %.4f, test accuracy %.2f%%, loss scale %g\n", epoch + 1,
           (double)loss_value, total ? 100.0 * (double)correct / (double)total : 0.0,
           (double)amp_scaler_get_scale(scaler));
  }
  int rc = amp_ctx_status(ctx) == AMP_OK ? 0 : 1;
  if (rc) fprintf(stderr, "mnist_mlp: %s\n", amp_ctx_error(ctx));
  amp_loader_free(loader);
  amp_dataset_free(train);
  amp_dataset_free(test);
  amp_ctx_free(ctx);
  return rc;
}
