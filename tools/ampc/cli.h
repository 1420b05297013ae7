/* Commands of the ampc program (each in its own file). */
#ifndef AMPC_CLI_H
#define AMPC_CLI_H

#include "ampc.h"

/* `ampc train [options]`: argv holds the options only. Returns the exit
 * status (0 ok, 1 failure, 2 bad usage). */
int ampc_train_main(int argc, char **argv);

/* `ampc train` with --model gpt:... or cnn:... (train_model.c); and whether
 * argv names such a model. */
int ampc_train_model_main(int argc, char **argv);
int ampc_is_model_family(int argc, char **argv);

/* `ampc sample`: text from a trained GPT checkpoint (sample.c). */
int ampc_sample_main(int argc, char **argv);

/* `ampc eval --checkpoint FILE [--data DIR|synthetic] [--threads N] [--json]`:
 * test accuracy of a checkpoint's model. */
int ampc_eval_main(int argc, char **argv);

/* `ampc export --checkpoint IN [--dtype f16|bf16] OUT`: the 16-bit weights
 * alone, as safetensors. */
int ampc_export_main(int argc, char **argv);

/* `ampc plot RUN.jsonl [MORE.jsonl ...] -o OUT.svg`: the metrics of one or
 * more runs as an SVG figure. */
int ampc_plot_main(int argc, char **argv);

#endif
