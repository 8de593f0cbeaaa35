/* The `sotu` subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns a process exit code
 * (common/status.h: 0, 2 usage/config, 3 data, 4 I/O, 5 numeric, 1 other).
 * Each prints its own --help. */
#ifndef SOTU_CLI_COMMANDS_H
#define SOTU_CLI_COMMANDS_H

int sotu_cmd_train(int argc, char **argv);
int sotu_cmd_pretrain(int argc, char **argv);
int sotu_cmd_finetune(int argc, char **argv);
int sotu_cmd_data(int argc, char **argv);
int sotu_cmd_merge(int argc, char **argv);
int sotu_cmd_eval(int argc, char **argv);
int sotu_cmd_predict(int argc, char **argv);
int sotu_cmd_import(int argc, char **argv);
int sotu_cmd_export(int argc, char **argv);
int sotu_cmd_inspect(int argc, char **argv);
int sotu_cmd_bench(int argc, char **argv);
int sotu_cmd_doctor(int argc, char **argv);

/* Prints the error recorded with sotu_error() as "sotu <cmd>: message" and
 * returns the exit code for s. */
int sotu_cmd_fail(const char *cmd, int s);

#endif
