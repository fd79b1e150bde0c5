"""``run_recbole``: RecBole's own script, with plugin models resolved first.

    run_recbole --model=BLaIRCLIP --dataset=appliances-sample --config_files="a.yaml b.yaml" --epochs=5

Any other ``--key=value`` is a RecBole config override (highest priority), exactly as in RecBole.
"""
import argparse
import json
import sys

from recbole_blairclip.errors import BlairclipError


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole",
        description="Train and test a plugin or RecBole model; extra --key=value pairs override the config.",
    )
    parser.add_argument("--model", "-m", type=str, default="BPR", help="model name (see `blairclip models`)")
    parser.add_argument("--dataset", "-d", type=str, default="appliances-sample", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="config files, space-separated")
    parser.add_argument("--nproc", type=int, default=1, help="number of processes")
    parser.add_argument("--ip", type=str, default="localhost", help="ip of master node")
    parser.add_argument("--port", type=str, default="5678", help="port of master node")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of jobs")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    parser.add_argument("--no_save", action="store_true", help="do not save checkpoints (test on the last epoch)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, _ = build_parser().parse_known_args(argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    try:
        from recbole_blairclip.quick_start import run

        result = run(
            model=args.model,
            dataset=args.dataset,
            config_file_list=config_file_list,
            saved=not args.no_save,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
            cmd_args=argv,
        )
    except BlairclipError as exc:
        print(f"run_recbole: error: {exc}", file=sys.stderr)
        return 2
    if result is None:
        return 0
    if args.json:
        print(json.dumps(result))
    else:
        print(f"best valid: {result['best_valid_result']}")
        print(f"test result: {result['test_result']}")
    return 0


def _entry():  # pragma: no cover - console-script shim
    sys.exit(main())
