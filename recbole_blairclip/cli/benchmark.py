"""``blairclip benchmark``: many models, one split, one table (mean ± std over seeds), CSV, JSON and plots."""
import shlex
import sys

HELP = "run many models (each in its own process) on one dataset: results table, csv, json, plots"


def add_arguments(parser):
    parser.add_argument("--dataset", default=None, help="dataset under data_path (default: the benchmark yaml's)")
    parser.add_argument("--models", default=None,
                        help="comma-separated rows, e.g. TFIDF,BPR,SASRec,BLaIRCLIP-text,BLaIRCLIP "
                             "(default: the benchmark yaml's `models`)")
    parser.add_argument("--seeds", default=None,
                        help="a count (3 = seeds 2020, 2021, 2022) or a list 1,2,3 (default: the yaml's, else 1)")
    parser.add_argument("--config_files", "--config-files", nargs="+", default=None, metavar="YAML",
                        help="run configs and/or benchmark yaml (models, variants, model_config, seeds)")
    parser.add_argument("--out", default="results", help="results root; the run goes to OUT/<dataset>/<run>")
    parser.add_argument("--run", default=None, help="run folder name (default: the benchmark yaml's file name)")
    parser.add_argument("--force", action="store_true", help="re-run (model, seed) pairs that already finished")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every model, highest priority (repeatable), e.g. --set epochs=5")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run before it is stopped")
    parser.add_argument("--keep-checkpoints", action="store_true", default=None,
                        help="keep each run's best checkpoint under runs/<model>/seed<seed>/saved")
    parser.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="terminal progress: a bar per run, one line per epoch, or none (default auto)")


def _overrides(pairs):
    import yaml

    from recbole_blairclip.config import SafeConfigLoader
    from recbole_blairclip.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.load(value, Loader=SafeConfigLoader)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def main(args):
    from recbole_blairclip.benchmark.report import table_text
    from recbole_blairclip.benchmark.runner import benchmark

    files = []
    for item in args.config_files or []:
        files.extend(item.split())  # also accept run_recbole's style: --config_files "a.yaml b.yaml"
    seeds = args.seeds
    if seeds is not None and "," not in seeds and seeds.strip().isdigit():
        seeds = int(seeds)
    try:
        result = _run(benchmark, args, files, seeds)
    except KeyboardInterrupt:
        print("\nblairclip benchmark: interrupted; finished runs are kept, run the same command again to resume",
              file=sys.stderr)
        return 130
    print(table_text(result["run_dir"]))
    print(f"\n{result['ran']} run(s), {result['skipped']} skipped (finished earlier), {result['failed']} failed")
    for name, path in result["files"].items():
        print(f"  {name:<14}{path}")
    return 1 if result["failed"] else 0


def _run(benchmark, args, files, seeds):
    return benchmark(
        dataset=args.dataset,
        models=args.models,
        seeds=seeds,
        config_files=files,
        config_dict=_overrides(args.set),
        out=args.out,
        run_name=args.run,
        force=args.force,
        progress=args.progress,
        timeout=args.timeout,
        keep_checkpoints=args.keep_checkpoints,
        command="blairclip " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
