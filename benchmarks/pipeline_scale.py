"""The whole pipeline at Appliances size (issue 16, item 4): synthetic data of Appliances' shape -> convert ->
features -> TFIDF, BPR, SASRec, BLaIRCLIP one epoch each -> full-sort evaluation of every test user.

Appliances' size: ``blairclip synth --users 1800000 --items 94000`` writes about 2.2M reviews (the real
Appliances 2023 file: 2.1M), which ``convert`` keeps as about 543K interactions of 202K users on 51.5K items
(benchmarks/RESULTS.md, issue 3). ``--scale`` takes that fraction of users and items (0.01: a smoke run).

Every stage runs in its own process; for each the report gives wall seconds, CPU seconds (user + system, from
``os.wait4``) and peak resident memory of that process, and the 1-minute load average at its start and end
(the machine may be shared). A model stage builds the dataset and model with the packaged defaults (no config
file), trains one epoch (RecBole's ``_train_epoch``, no validation) and evaluates every test user with
full-sort ranking (the plugin protocol); inside it the three phases are timed separately (wall, CPU, peak
memory so far). The ratios BLaIRCLIP / SASRec of the epoch and of the evaluation come from the same run.

    python benchmarks/pipeline_scale.py --scale 0.05 --workdir /tmp/pipeline-0.05
    python benchmarks/pipeline_scale.py --workdir /tmp/pipeline-full          # Appliances size

The report is ``<workdir>/pipeline.json`` (rewritten after every stage; a rerun skips the stages it holds,
``--force`` redoes them) and a Markdown table on stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import time

APPLIANCES_USERS, APPLIANCES_ITEMS = 1_800_000, 94_000
MODELS = ("TFIDF", "BPR", "SASRec", "BLaIRCLIP")
NAME = "appl"


def run_stage(cmd, log_path, env):
    """Run ``cmd`` as a child process; its wall and CPU seconds, peak RSS (MiB) and exit status."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "load_start": round(load0, 2),
            "load_end": round(os.getloadavg()[0], 2), "returncode": proc.returncode}


def _phase(t0, c0):
    import resource

    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def worker(args):
    """One model stage (in its own process): setup, one training epoch, full-sort test evaluation."""
    import torch

    torch.set_num_threads(args.threads)
    from recbole_blairclip.quick_start import build_model, build_trainer, make_config, prepare

    report = {}
    t0, c0 = time.perf_counter(), time.process_time()
    config = make_config(args.worker, NAME, config_dict={
        "data_path": args.data, "epochs": 1, "seed": args.seed, "show_progress": False,
        "output_dir": os.path.join(args.workdir, "runs", args.worker), "ranks_file": None})
    _, train, _, test = prepare(config)
    trainer = build_trainer(config, build_model(config, train))
    report["setup"] = _phase(t0, c0)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer._train_epoch(train, 0, show_progress=False)
    report["epoch"] = dict(_phase(t0, c0), batches=len(train))
    t0, c0 = time.perf_counter(), time.process_time()
    result = trainer.evaluate(test, load_best_model=False, show_progress=False)
    report["eval"] = _phase(t0, c0)
    views = trainer.last_views or {}
    report["test_users"] = views.get("n_users")
    report["eval"]["users_per_s"] = round(report["test_users"] / report["eval"]["wall_s"], 1) if views else None
    report["test"] = {k: round(float(v), 6) for k, v in result.items() if k in ("recall@10", "ndcg@10")}
    print(json.dumps(report), flush=True)


def save(path, report):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def table(report):
    rows = ["| stage | wall s | CPU s | peak RSS MiB | load start / end |", "|---|---:|---:|---:|---|"]
    for stage, r in report["stages"].items():
        rows.append(f"| {stage} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mib']} | "
                    f"{r['load_start']} / {r['load_end']} |")
        for phase in ("setup", "epoch", "eval"):
            if phase in r:
                p = r[phase]
                rows.append(f"| {stage}: {phase} | {p['wall_s']} | {p['cpu_s']} | {p['peak_rss_mib']} (so far) | |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Appliances' users and items")
    parser.add_argument("--workdir", default="/tmp/pipeline-scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--max-length", type=int, default=32, help="minilm token limit per item text")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stage")
    parser.add_argument("--force", action="store_true", help="redo the stages the report already holds")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    work = os.path.abspath(args.workdir)
    raw, data = os.path.join(work, "raw"), os.path.join(work, "data")
    os.makedirs(os.path.join(work, "logs"), exist_ok=True)
    report_path = os.path.join(work, "pipeline.json")
    users, items = round(APPLIANCES_USERS * args.scale), round(APPLIANCES_ITEMS * args.scale)
    report = {"scale": args.scale, "synth_users": users, "synth_items": items, "stages": {}}
    if os.path.isfile(report_path) and not args.force:
        with open(report_path) as f:
            old = json.load(f)
        if (old.get("synth_users"), old.get("synth_items")) == (users, items):
            report = old
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    bindir = os.path.dirname(sys.executable)
    cli = [os.path.join(bindir, "blairclip")]
    stages = [
        ("synth", cli + ["synth", "--users", str(users), "--items", str(items), "--seed", str(args.seed),
                         "--out", raw, "--force"]),
        ("convert", cli + ["convert", "--reviews", os.path.join(raw, "Appliances.jsonl.gz"),
                           "--meta", os.path.join(raw, "meta_Appliances.jsonl.gz"), "--images",
                           os.path.join(raw, "images"), "--name", NAME, "--out", data, "--force", "--no-progress"]),
        ("features", cli + ["features", "--dataset", os.path.join(data, NAME), "--text-encoder", "minilm",
                            "--max-length", str(args.max_length), "--image-encoder", "pixels", "--pixels-pca", "64",
                            "--device", "cpu", "--threads", str(args.threads), "--no-progress"]),
    ]
    stages += [(m, [sys.executable, os.path.abspath(__file__), "--worker", m, "--data", data, "--workdir", work,
                    "--seed", str(args.seed), "--threads", str(args.threads)]) for m in args.models.split(",")]
    for stage, cmd in stages:
        if stage in report["stages"] and not args.force:
            print(f"{stage}: in the report already, skipped", flush=True)
            continue
        log = os.path.join(work, "logs", f"{stage}.log")
        print(f"{stage}: {' '.join(cmd)}", flush=True)
        result = run_stage(cmd, log, env)
        if result["returncode"] != 0:
            with open(log) as f:
                tail = f.read()[-2000:]
            print(f"{stage} failed (exit {result['returncode']}), log {log}:\n{tail}", file=sys.stderr)
            return 1
        if stage in MODELS:
            with open(log) as f:
                result.update(json.loads(f.read().strip().splitlines()[-1]))
        if stage == "convert":
            with open(os.path.join(data, NAME, f"{NAME}.stats.json")) as f:
                s = json.load(f)
            result["dataset"] = dict(s["kept"], test_users=s["parts"]["test"]["users"],
                                         cold_start_test_targets=s["cold_start"]["test_targets"])
        report["stages"][stage] = result
        save(report_path, report)
        print(f"{stage}: {result['wall_s']} s wall, {result['cpu_s']} s CPU, {result['peak_rss_mib']} MiB", flush=True)
    st = report["stages"]
    if "BLaIRCLIP" in st and "SASRec" in st:
        report["ratios"] = {f"BLaIRCLIP/SASRec {phase} {kind}": round(st["BLaIRCLIP"][phase][kind] / st["SASRec"][phase][kind], 3)
                            for phase in ("epoch", "eval") for kind in ("wall_s", "cpu_s")}
    report["total"] = {k: round(sum(r[k] for r in st.values()), 1) for k in ("wall_s", "cpu_s")}
    save(report_path, report)
    print(table(report))
    print(json.dumps({k: report[k] for k in ("scale", "synth_users", "synth_items", "total")
                      + (("ratios",) if "ratios" in report else ())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
