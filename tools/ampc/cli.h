/* Commands of the ampc program (each in its own file). */
#ifndef AMPC_CLI_H
#define AMPC_CLI_H

#include "ampc.h"

/* `ampc train [options]`: argv holds the options only. Returns the exit
 * status (0 ok, 1 failure, 2 bad usage). */
int ampc_train_main(int argc, char **argv);

#endif
