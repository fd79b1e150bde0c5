"""``blairclip tune``: a Ray Tune search on the validation metric (see recbole_blairclip.tune.search).

    blairclip tune --model BPR --dataset appliances-sample --space configs/tune/BPR.yaml --samples 8
"""
import json

HELP = "Ray Tune hyper-parameter search on the validation metric (local or on a Ray cluster)"


def add_arguments(parser):
    parser.add_argument("--model", "-m", required=True, help="model name (see `blairclip models`)")
    parser.add_argument("--dataset", "-d", required=True, help="dataset name (a folder under data_path)")
    parser.add_argument("--space", required=True, help="search space yaml, e.g. configs/tune/BPR.yaml")
    parser.add_argument("--samples", type=int, default=10,
                        help="trials to sample (with grid keys each sample runs the whole grid; default 10)")
    parser.add_argument("--scheduler", choices=["asha", "fifo"], default="asha",
                        help="asha stops weak trials on the validation metric; fifo runs every trial fully")
    parser.add_argument("--grace-period", type=int, default=1,
                        help="ASHA: validations every trial gets before it can be stopped (default 1)")
    parser.add_argument("--address", default=None,
                        help="join a Ray cluster: auto, host:port or ray://host:port (default: local Ray)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs per trial (default 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs per trial (default 0)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials running at once (default: as resources allow)")
    parser.add_argument("--config_files", "--config-files", nargs="+", default=None,
                        help="run config yaml files (space-separated, as for run_recbole)")
    parser.add_argument("--out", default=None, help="output folder (default <output_dir>/tune/<model>-<dataset>)")
    parser.add_argument("--resume", action="store_true", help="continue the search already in --out")
    parser.add_argument("--retry-failed", action="store_true", help="with --resume: run failed trials again")
    parser.add_argument("--no-test", action="store_true", help="skip the best configuration's test run")
    parser.add_argument("--quiet", action="store_true", help="no Ray progress table")
    parser.add_argument("--json", action="store_true", help="print the result summary as one JSON object")


def main(args):
    from recbole_blairclip.tune.search import tune

    files = [f for item in (args.config_files or []) for f in item.split()] or None
    result = tune(
        args.model,
        args.dataset,
        args.space,
        samples=args.samples,
        scheduler=args.scheduler,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        config_file_list=files,
        out=args.out,
        resume=args.resume,
        retry_failed=args.retry_failed,
        grace_period=args.grace_period,
        max_concurrent_trials=args.max_concurrent,
        num_cpus=args.num_cpus,
        test_best=not args.no_test,
        verbose=0 if args.quiet or args.json else 1,
    )
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "epochs"}))
    else:
        with open(result["files"]["trials_md"], "r", encoding="utf-8") as f:
            print(f.read())
        for name, path in result["files"].items():
            print(f"{name}: {path}")
        if result["test"] is not None:
            print(f"best config test result: {result['test']['test_result']}")
    if result["interrupted"]:
        print(f"search interrupted: finished trials are kept; continue with the same command and --resume")
        return 130
    if result["best"] is None:
        print("no trial finished a validation: see the error column of trials.md")
        return 1
    return 0
