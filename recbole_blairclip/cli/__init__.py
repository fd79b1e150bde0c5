"""Command-line entry points: ``run_recbole`` and ``blairclip <subcommand>``.

Only this package parses arguments; every subcommand module is thin: it declares its arguments,
calls the Python API of a lower layer, and prints. A subcommand module exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``main(args) -> int`` (the exit status).
"""
import argparse
import importlib
import sys

# subcommand name -> module under recbole_blairclip.cli (each later pipeline step adds one line)
SUBCOMMANDS = {
    "models": "models",
    "tune": "tune",
    "convert": "convert",
    "synth": "synth",
    "check-split": "check_split",
    "features": "features",
    "benchmark": "benchmark",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="blairclip",
        description="recbole-blairclip: multimodal product recommendation benchmarks on RecBole.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv=None):
    """``blairclip`` console script. Returns the exit status (errors print one line, exit 2)."""
    from recbole_blairclip.errors import BlairclipError

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args._main(args) or 0)
    except BlairclipError as exc:
        print(f"blairclip {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"blairclip {args.command}: interrupted (nothing half-written is kept; run it again to "
              "resume or redo)", file=sys.stderr)
        return 130


def _entry():  # pragma: no cover - console-script shim
    sys.exit(main())
