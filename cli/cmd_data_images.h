/* `sotu data import-images` and `sotu data manifest` (cmd_data_images.c),
 * dispatched from cmd_data.c. Arguments start at the subcommand's name;
 * each returns a process exit code. */
#ifndef SOTU_CLI_CMD_DATA_IMAGES_H
#define SOTU_CLI_CMD_DATA_IMAGES_H

int sotu_data_import_images(int argc, char **argv);
int sotu_data_manifest(int argc, char **argv);

#endif
