/* Commands of the ampc program (each in its own file). */
#ifndef AMPC_CLI_H
#define AMPC_CLI_H

#include "ampc.h"

#include <stddef.h>

/* `ampc train [options]`: argv holds the options only. Returns the exit
 * status (0 ok, 1 failure, 2 bad usage). */
int ampc_train_main(int argc, char **argv);

/* `ampc train` with --model gpt:... or cnn:... (train_model.c); and whether
 * argv names such a model. */
int ampc_train_model_main(int argc, char **argv);
int ampc_is_model_family(int argc, char **argv);

/* `ampc eval` of a GPT/CNN checkpoint: non-zero when `path` is one. */
int ampc_is_model_checkpoint(const char *path);

/* `ampc eval` of a GPT/CNN checkpoint `path`: the validation loss (GPT, the
 * first 20 validation batches, nats per token) or the test accuracy (CNN),
 * under the checkpoint's recipe or `precision` (NULL: the checkpoint's), on
 * its data or `data`. Prints a line, or one JSON object with `json`.
 * Returns the exit status. */
int ampc_eval_model(const char *path, const char *precision, const char *data, long threads,
                    int json);

/* `ampc sample`: text from a trained GPT checkpoint (sample.c). */
int ampc_sample_main(int argc, char **argv);

/* `ampc eval [options] FILE`: test accuracy of a model's weights. */
int ampc_eval_main(int argc, char **argv);

/* `ampc export --checkpoint IN [options] OUT`: the weights alone, as
 * safetensors or a PyTorch state dict. */
int ampc_export_main(int argc, char **argv);

/* `ampc plot RUN.jsonl [MORE.jsonl ...] -o OUT.svg`: the metrics of one or
 * more runs as an SVG figure. */
int ampc_plot_main(int argc, char **argv);

/* `ampc diagnose [options]`: per-layer histograms and what each format
 * would flush, round or overflow (diagnose.c). */
int ampc_diagnose_main(int argc, char **argv);

/* Writes the parameters of `model` as a PyTorch state dict in torch.save's
 * format (export_pt.c), converted from FP32 to `dt` (F32, F16 or BF16), with
 * the module's names and layouts; atomically. Returns 1, or 0 with a
 * message in msg. */
int ampc_write_torch(const char *path, amp_module *model, amp_dtype dt, char *msg, size_t cap);

#endif
