"""The ``zssrgan`` command: one explicit table of subcommands, each a small module."""
from __future__ import annotations

import argparse
import sys

from . import dataset_cmd, demo_cmd, estimators_cmd, kernel_cmd, methods_cmd, prior_cmd, report_cmd, run_cmd, sr_cmd

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
    "prior": prior_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zssrgan",
        description="Zero-shot blind super-resolution (KernelGAN, ZSSR, ZSSRGAN), benchmarked with Ray and MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.help, description=module.help)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors (bad input, files, the tracking store): one clear line
        if not isinstance(exc, (ValueError, OSError, RuntimeError)) and not _from_mlflow(exc):
            raise
        print(f"zssrgan {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _from_mlflow(exc: Exception) -> bool:
    """MLflow's errors (an unsupported store URI, a server refusing a call) derive from Exception."""
    return type(exc).__module__.split(".")[0] == "mlflow"


if __name__ == "__main__":
    sys.exit(main())
