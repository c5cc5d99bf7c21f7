"""The ``zssrgan`` command: one explicit table of subcommands, each a small module.

Exit status: what the subcommand returns (0 on success), 2 for an error the user can act on (one
line: bad input, a file, the tracking store, the cluster), 3 for an unexpected error (a bug, or
the machine failing, e.g. CUDA out of memory: shown with its traceback), 130 after Ctrl-C.
``--debug`` shows the traceback of every error.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from ..errors import UserError
from . import (dataset_cmd, demo_cmd, estimators_cmd, kernel_cmd, methods_cmd, prior_cmd, report_cmd, run_cmd,
               sr_cmd, ui_cmd)

# name -> module with ``help``, ``add_arguments(parser)`` and ``run(args) -> int``
COMMANDS = {
    "methods": methods_cmd,
    "estimators": estimators_cmd,
    "sr": sr_cmd,
    "kernel": kernel_cmd,
    "run": run_cmd,
    "make-dataset": dataset_cmd,
    "report": report_cmd,
    "demo": demo_cmd,
    "ui": ui_cmd,
    "prior": prior_cmd,
}

# The errors reported in one line: our own (bad input, the store, the cluster) and a file-system
# refusal naming the file. Anything else is unexpected and keeps its traceback.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)
EXIT_USER_ERROR, EXIT_UNEXPECTED = 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zssrgan",
        description="Zero-shot blind super-resolution (KernelGAN, ZSSR, ZSSRGAN), benchmarked with Ray and MLflow.",
    )
    debug_help = "show the traceback of any error (by default only unexpected errors show one)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.help, description=module.help)
        module.add_arguments(p)
        # also after the subcommand; SUPPRESS keeps a --debug given before it
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        user = is_user_error(exc)
        if args.debug or not user:
            traceback.print_exc()
        if user:
            print(f"zssrgan {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"zssrgan {args.command}: unexpected error {type(exc).__name__} (traceback above): a bug, or the "
              "machine failed (e.g. out of memory)", file=sys.stderr)
        return EXIT_UNEXPECTED


def is_user_error(exc: BaseException) -> bool:
    """One of :data:`USER_ERRORS`, or MLflow's refusal of a store or a call (MLflow's errors derive
    from Exception only: an unsupported store URI, a server rejecting a request)."""
    return isinstance(exc, USER_ERRORS) or type(exc).__module__.split(".")[0] == "mlflow"


if __name__ == "__main__":
    sys.exit(main())
