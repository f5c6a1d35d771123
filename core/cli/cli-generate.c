/* cli-generate.c — placeholder until its owner lands it (this session). */
#include <stdio.h>
#include "cli.h"
int llmh_cmd_generate(int argc, char **argv) { (void)argc; fprintf(stderr, "llmhost: %s: not built yet\n", argv[0]); return 2; }
