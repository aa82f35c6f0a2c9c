/* The nabla command: dispatch to a subcommand. */

#include <string.h>

#include "cli.h"

static const char *usage =
    "usage: nabla <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo        the course notes' worked examples by reverse and forward mode,\n"
    "              then a network trained on the built-in digits, checked, plotted\n"
    "  train       train an MLP (digits, fashion-mnist, CSV, IDX) with progress, plots,\n"
    "              checkpoints and JSON lines\n"
    "  eval        accuracy of a saved model on a data set\n"
    "  modes       cost of a full Jacobian by forward and by reverse mode\n"
    "  gradcheck   check every built-in op's derivatives against central differences\n"
    "  diff        a formula's gradient by reverse, forward, numerical and symbolic\n"
    "              differentiation, side by side\n"
    "  trace       the forward and reverse sweeps of a formula, step by step\n"
    "  plot        SVG charts: plot activations --out DIR\n"
    "  export      a trained MLP as standalone C; checkpoint <-> safetensors\n"
    "\n"
    "nabla <command> --help shows a command's options.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    /* clang-format off */
    {"demo", cmd_demo},
    {"modes", cmd_modes},
    {"gradcheck", cmd_gradcheck},
    {"diff", cmd_diff},
    {"trace", cmd_trace},
    {"plot", cmd_plot},
    {"train", cmd_train},
    {"eval", cmd_eval},
    {"export", cmd_export},
    /* clang-format on */
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    cli_set_blas_threads(1); /* commands that take --threads raise it */
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc, argv);
    fprintf(stderr, "nabla: unknown command '%s' (nabla --help lists them)\n", argv[1]);
    return 2;
}
