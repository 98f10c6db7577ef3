/* ohm_cli: the subcommands of the ohmpeer program. Each takes the arguments
 * after its name (argv[0] is the subcommand) and returns the exit status. */
#ifndef OHM_CLI_H
#define OHM_CLI_H

/* ohmpeer keygen --out PREFIX: writes PREFIX.key (mode 0600) and PREFIX.pub. */
int ohm_cli_keygen(int argc, char **argv);

/* ohmpeer flatness --checkpoint F [--config C] [--set k=v]...: one JSON object of flatness
 * measures. */
int ohm_cli_flatness(int argc, char **argv);

/* ohmpeer config [--get SECTION.KEY]... [--config C] [--set k=v]...: the schema table, or
 * the resolved value of each asked key, one per line. */
int ohm_cli_config(int argc, char **argv);

#endif
