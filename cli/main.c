/* main.c - the kdcam tool's entry point: the command table and dispatch.
 * A command is one row: its name, its function (commands.h) and the line
 * `kdcam --help` shows for it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"layers", cmd_layers, "list every addressable layer of a model with its shape"},
    {"classify", cmd_classify, "top-K classes of images"},
    {"dump", cmd_dump, "write layer activations (and gradients) as .npy files"},
    {"cam", cmd_cam, "class activation maps: overlays and .npy maps"},
    {"compare", cmd_compare,
     "several models side by side: feature map, Grad-CAM, Guided Grad-CAM"},
    {"shapes", cmd_shapes, "generate the procedural shapes dataset (images + labels.json)"},
    {"pointing", cmd_pointing,
     "score models' heatmaps against known object boxes (shapes dataset)"},
    {"bench", cmd_bench, "time forward, Grad-CAM or guided backprop of a model"},
    {"inspect", cmd_inspect, "list the tensors of a weights file (.pth or .safetensors)"},
    {"convert", cmd_convert, "convert a PyTorch checkpoint (.pth) to safetensors"},
    {"analyze", cmd_analyze,
     "teacher/student statistics over a dataset: CKA, agreement (resumable, shardable)"},
    {"merge", cmd_merge, "combine the shard folders of `kdcam analyze --shard` into one"},
    {"detect", cmd_detect, "a RetinaNet detector's boxes on images (text, JSON, pictures)"},
    {"eval", cmd_eval, "COCO box mAP of detections against ground truth (as pycocotools)"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fputs("usage: kdcam COMMAND [options]\n\nCommands:\n", f);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fputs("\n"
          "kdcam COMMAND --help shows the options of a command. Every command that loads a\n"
          "model also takes --kernels auto|scalar|avx2|avx512|neon: the compute kernels\n"
          "(default auto, the best this CPU has; scalar: the plain reference kernels).\n"
          "Weights: point -w at your PyTorch checkpoint (.pth, .pt; read without running\n"
          "its pickled code) or at a .safetensors file; --key K names the state dict inside\n"
          "a checkpoint (default: found under the usual keys).\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("kdcam %s\n", kdc_version());
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(cmd, commands[i].name))
            continue;
        int rc = commands[i].run(argc - 1, argv + 1);
        if (fflush(stdout) != 0 && rc == 0)
            rc = cli_error("cannot write to standard output");
        return rc;
    }
    cli_error("unknown command '%s' (kdcam --help lists them)", cmd);
    return 2;
}
