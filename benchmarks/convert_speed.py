"""Benchmark ``blairclip convert`` at Amazon Appliances 2023 scale (2.1M reviews, 94K items).

Steps (each timed in its own subprocess so that peak memory is that step's own):

1. ``synth``: a synthetic 2023-schema Appliances-like file (no images), skipped when present;
2. floor ``read``: stream-decompress the reviews file line by line (no parsing);
3. floor ``read+parse``: the same plus ``orjson.loads`` of every line (the least any JSON converter does);
4. ``convert``: the whole conversion (read, validate, dedupe, filter, split, write every atomic file).

Usage::

    python benchmarks/convert_speed.py --workdir /tmp/convert-bench           # full scale
    python benchmarks/convert_speed.py --users 20000 --items 2000 --workdir /tmp/small   # quick try
    python benchmarks/convert_speed.py --repeat 3 --baseline /path/to/other/checkout   # before vs after

With ``--baseline``, every round also runs the convert step of another checkout (its
``recbole_blairclip`` first on ``sys.path``, output in ``<workdir>/ds-baseline``) right after this one's,
so both are timed under the same load; ``--repeat`` runs that many interleaved rounds (the synthetic
file is built once) and the summary holds every round plus each step's median.

Prints one line per step (wall seconds, reviews/s, CPU seconds of user + system time, peak RSS, the
machine's 1-minute load average at the end of the step: other processes slow wall times down) and a JSON
summary.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STEP_CODE = {
    "synth": """
from recbole_blairclip.data.synth import synthesize
synthesize(W + '/raw', users=U, items=I, seed=0, images=False, compresslevel=6, force=True)
""",
    "read": """
import gzip, io
n = 0
with open(W + '/raw/Appliances.jsonl.gz', 'rb') as raw:
    for line in io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=1 << 20):
        n += 1
print('LINES', n)
""",
    "read+parse": """
import gzip, io, orjson
n = 0
loads = orjson.loads
with open(W + '/raw/Appliances.jsonl.gz', 'rb') as raw:
    for line in io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=1 << 20):
        loads(line)
        n += 1
print('LINES', n)
""",
    "convert": """
from recbole_blairclip.data.convert import convert
s = convert(W + '/raw/Appliances.jsonl.gz', W + '/raw/meta_Appliances.jsonl.gz', name='Appliances',
            out=W + OUT, force=True)
import json; print('STATS', json.dumps({k: s[k] for k in ('reviews', 'dropped', 'kept', 'parts', 'cold_start', 'items')}))
""",
}


def run_step(name, workdir, users, items, root=ROOT, out="/ds"):
    code = (f"import sys; sys.path.insert(0, {root!r}); W={workdir!r}; U={users}; I={items}; OUT={out!r}\n"
            + STEP_CODE[name])
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "p = subprocess.run([sys.executable, '-c', sys.argv[1]], capture_output=True, text=True)\n"
               "dt = time.perf_counter() - t\n"
               "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "rss = ru.ru_maxrss\n"
               "cpu = ru.ru_utime + ru.ru_stime\n"
               "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr[-3000:])\n"
               "print('BENCH', dt, rss, p.returncode, cpu)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, code], capture_output=True, text=True)
    bench = [line for line in out.stdout.splitlines() if line.startswith("BENCH")]
    if not bench or bench[-1].split()[3] != "0":
        raise SystemExit(f"step {name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    _, dt, rss, _, cpu = bench[-1].split()
    extra = {}
    for line in out.stdout.splitlines():
        if line.startswith("STATS "):
            extra["stats"] = json.loads(line[6:])
        if line.startswith("LINES "):
            extra["lines"] = int(line.split()[1])
    extra["cpu_seconds"] = float(cpu)
    return float(dt), int(rss) / 1024.0, extra


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_800_000)
    ap.add_argument("--items", type=int, default=94_000)
    ap.add_argument("--workdir", default="/tmp/convert-bench")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds of the timed steps")
    ap.add_argument("--baseline", help="another checkout whose convert is timed in every round too")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    summary = {"users": args.users, "items": args.items}
    reviews = os.path.join(args.workdir, "raw", "Appliances.jsonl.gz")
    if not os.path.exists(reviews):
        dt, rss, _ = run_step("synth", args.workdir, args.users, args.items)
        summary["synth_seconds"] = round(dt, 1)
        print(f"synth: {dt:.1f} s, peak RSS {rss:.0f} MiB")
    summary["reviews_gz_MiB"] = round(os.path.getsize(reviews) / 2**20, 1)
    steps = [("read", "read", ROOT, "/ds"), ("read+parse", "read+parse", ROOT, "/ds"),
             ("convert", "convert", ROOT, "/ds")]
    if args.baseline:
        steps.append(("convert (baseline)", "convert", os.path.abspath(args.baseline), "/ds-baseline"))
    rounds = []
    n = None
    for k in range(args.repeat):
        row = {}
        for label, step, root, out in steps:
            dt, rss, extra = run_step(step, args.workdir, args.users, args.items, root, out)
            if "lines" in extra:
                n = extra["lines"]
            if "stats" in extra:
                n = extra["stats"]["reviews"]["lines"]
                summary["convert_stats"] = extra["stats"]
            rate = n / dt if n else float("nan")
            cpu = extra["cpu_seconds"]
            row[label] = {"seconds": round(dt, 2), "reviews_per_s": round(rate), "cpu_seconds": round(cpu, 2),
                          "peak_rss_MiB": round(rss), "load_avg_1min": round(os.getloadavg()[0], 1)}
            print(f"{label:>18}: {dt:7.2f} s wall  {rate:>10,.0f} reviews/s  {cpu:7.2f} s CPU  peak RSS {rss:7.0f} MiB"
                  f"  ({n:,} lines, load average {os.getloadavg()[0]:.1f})")
        floor = row["read+parse"]["seconds"]
        for label in row:
            if label.startswith("convert"):
                row[label]["x_floor"] = round(row[label]["seconds"] / floor, 2)
        print(f"round {k + 1}: " + ", ".join(f"{label} {row[label]['x_floor']:.2f}x the read+parse floor"
                                             for label in row if label.startswith("convert")))
        rounds.append(row)
    for label, *_ in steps:
        summary[label] = {key: statistics.median(r[label][key] for r in rounds) for key in rounds[0][label]}
    if args.repeat > 1:
        summary["rounds"] = rounds
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
