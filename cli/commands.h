/* commands.h - the kdcam commands, each `int cmd_NAME(argc, argv)` with
 * argv[0] the command's name; main.c lists them in its command table. */
#ifndef KDCAM_COMMANDS_H
#define KDCAM_COMMANDS_H

int cmd_layers(int argc, char **argv);   /* cmd_forward.c */
int cmd_classify(int argc, char **argv); /* cmd_forward.c */
int cmd_dump(int argc, char **argv);     /* cmd_forward.c */
int cmd_cam(int argc, char **argv);      /* cmd_cam.c */
int cmd_compare(int argc, char **argv);  /* cmd_compare.c */
int cmd_shapes(int argc, char **argv);   /* cmd_shapes.c */
int cmd_pointing(int argc, char **argv); /* cmd_pointing.c */
int cmd_bench(int argc, char **argv);    /* cmd_bench.c */
int cmd_inspect(int argc, char **argv);  /* cmd_inspect.c */
int cmd_convert(int argc, char **argv);  /* cmd_convert.c */
int cmd_analyze(int argc, char **argv);  /* cmd_analyze.c */
int cmd_merge(int argc, char **argv);    /* cmd_merge.c */
int cmd_eval(int argc, char **argv);     /* cmd_eval.c */
int cmd_detect(int argc, char **argv);   /* cmd_detect.c */

#endif
