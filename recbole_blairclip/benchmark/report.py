"""Benchmark outputs: ``results.csv``, ``results.json``, ``report.md``, ``metrics.png``, ``coldstart.png``.

Input: one record per (row, seed) as written by :mod:`recbole_blairclip.benchmark.worker`. Metric names
are the protocol's (:mod:`.metric_names`: lower case, RecBole's ``gauc`` reported as ``auc``: with one target
per user it is the per-user AUC over the full ranking; see DESIGN.md). Means and standard deviations are
over the seeds that finished (sample standard deviation, ``ddof=1``; :mod:`.summary`); the tables are
:mod:`.tables`, the figures :mod:`.plots`. Every file is written under a temporary name and moved into place.

When a run saved its per-user ranks (``ranks.parquet``, :mod:`recbole_blairclip.evaluation.ranks`), its
metrics are recomputed from that file, and every view gets bootstrap intervals and paired tests over the
test users (:mod:`recbole_blairclip.benchmark.stats`; with several seeds, per-user values averaged over
the seeds): ``results.json`` holds them under ``statistics``, ``report.md`` shows the intervals and marks
with † the rows not significantly different from the best one, ``metrics.png`` draws the intervals.
"""
import csv
import io
import os
import time

from recbole_blairclip.benchmark.metric_names import VIEW_TITLES, ordered
from recbole_blairclip.benchmark.plots import plot_coldstart, plot_metrics
from recbole_blairclip.benchmark.summary import COST_FIELDS, attach, load_ranks, statistics, summarize, views_of
from recbole_blairclip.benchmark.tables import (ablation_table, cost_table, failed_table, metric_table,
                                                stats_note)
from recbole_blairclip.io import write_json, write_text

CSV_TAIL = COST_FIELDS + ("wall_seconds", "best_valid_score", "device", "spec_hash", "worker_log", "log_file",
                          "error")


def markdown(records, meta, summary=None, stat=None):
    """The ``report.md`` text (``summary`` / ``stat``: from :func:`summarize` / :func:`statistics`)."""
    from recbole_blairclip.benchmark.reference import reference_section

    summary = summary if summary is not None else summarize(records)
    stat = stat or {}
    seeds = meta.get("seeds") or sorted({r["seed"] for r in records})
    lines = [
        f"# Benchmark: {meta.get('dataset')} ({meta.get('run')})",
        "",
        f"Command: `{meta.get('command', '')}`",
        "",
        f"{len(summary)} model(s) x {len(seeds)} seed(s) ({', '.join(str(s) for s in seeds)}); report written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Test metrics, full-sort ranking over every item; mean ± sample standard "
        "deviation over seeds; **bold** = best in its column (time and memory: lowest).",
    ]
    if stat:
        lines += ["", stats_note(stat)]
    lines += [
        "",
        "## Test metrics (all test users)",
        "",
        metric_table(summary, "overall") or "No run finished.",
    ]
    lines += reference_section(summary, meta)  # published numbers, when the benchmark yaml has `reference:`
    views = [v for v in dict.fromkeys(v for s in summary.values() for v in s["metrics"]) if v != "overall"]
    for view in views:
        counts = [s["view_users"] for s in summary.values() if s["view_users"].get(view) is not None]
        of = f": {counts[0][view]} of {counts[0]['overall']}" if counts and "overall" in counts[0] else ""
        lines += ["", f"## Test metrics ({VIEW_TITLES.get(view, view)} test users{of})", "",
                  metric_table(summary, view)]
    if not views:
        lines += ["", "The evaluation returned no cold-start / warm view for these runs."]
    table = ablation_table(stat)
    if table:
        lines += ["", "## Ablations: variant minus its base model", "",
                  "Difference of the means over the same test users (Holm-adjusted p-values: Wilcoxon / paired t; "
                  f"**\\*** = Wilcoxon p < {next(iter(stat.values()))['method']['alpha']}).", "", table]
    cost = cost_table(summary)
    if cost:
        lines += ["", "## Cost", "", cost]
    failed = failed_table(records, meta.get("run_dir"))
    if failed:
        lines += ["", "## Failed runs", "", failed]
    lines += ["", "![metrics](metrics.png)", "", "![cold-start](coldstart.png)", ""]
    return "\n".join(lines)


def csv_rows(records):
    """One flat dict per (row, seed): overall metrics, ``<view>_<metric>`` for other views, cost, status."""
    flat = []
    for r in records:
        row = {"model": r["row"], "base_model": r.get("model"), "seed": r["seed"], "status": r.get("status")}
        for view, metrics in views_of(r).items():
            prefix = "" if view == "overall" else f"{view}_"
            for name in ordered(metrics):
                row[prefix + name] = metrics[name]
        for field in CSV_TAIL:
            row[field] = r.get(field)
        flat.append(row)
    return flat


def write_csv(path, records):
    rows = csv_rows(records)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    head = [f for f in fields if f not in CSV_TAIL]
    fields = head + [f for f in CSV_TAIL if f in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_all(run_dir, records, meta):
    """Write every output file of a benchmark into ``run_dir``; returns {name: path}."""
    ranks = load_ranks(records)
    summary = summarize(records, ranks)
    stat = statistics(records, ranks, summary, meta)
    attach(summary, stat)
    files = {name: os.path.join(run_dir, name) for name in
             ("results.csv", "results.json", "report.md", "metrics.png", "coldstart.png")}
    write_csv(files["results.csv"], records)
    payload = dict(meta, summary=summary, statistics=stat, runs=records)
    write_json(files["results.json"], payload)
    text = markdown(records, meta, summary, stat)
    write_text(files["report.md"], text)
    plot_metrics(files["metrics.png"], summary, meta.get("dataset", ""))
    plot_coldstart(files["coldstart.png"], summary, meta.get("dataset", ""))
    return files


def table_text(run_dir):
    """The main table of a finished benchmark (for the terminal), read back from ``report.md``."""
    with open(os.path.join(run_dir, "report.md"), "r", encoding="utf-8") as f:
        text = f.read()
    buf = io.StringIO()
    inside = False
    for line in text.splitlines():
        if line.startswith("## Test metrics (all"):
            inside = True
            continue
        if inside and line.startswith("## "):
            break
        if inside and line.strip():
            buf.write(line + "\n")
    return buf.getvalue().rstrip()
