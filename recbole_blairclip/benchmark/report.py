"""Benchmark outputs: ``results.csv``, ``results.json``, ``report.md``, ``metrics.png``, ``coldstart.png``.

Input: one record per (row, seed) as written by :mod:`recbole_blairclip.benchmark.worker`. Metric names
are normalised to lower case and RecBole's ``gauc`` is reported as ``auc`` (with one target per user it is
the per-user AUC over the full ranking; see DESIGN.md). Means and standard deviations are over the seeds
that finished (sample standard deviation, ``ddof=1``). Every file is written under a temporary name and
moved into place.
"""
import csv
import io
import json
import math
import os
import time

PLOT_METRICS = ("recall@10", "recall@50", "ndcg@10", "auc")
VIEW_ORDER = ("overall", "warm", "coldstart")
VIEW_TITLES = {"overall": "all", "coldstart": "cold-start", "warm": "warm"}
_NAMES = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision",
          "auc": "AUC", "gauc": "AUC", "map": "MAP"}
COST_FIELDS = ("n_params", "best_epoch", "epochs", "train_seconds_per_epoch", "fit_seconds", "eval_seconds",
               "peak_memory_mb", "peak_gpu_memory_mb")
CSV_TAIL = COST_FIELDS + ("wall_seconds", "best_valid_score", "device", "spec_hash", "worker_log", "log_file",
                          "error")


def normalize(metrics):
    """Lower-case metric names; ``gauc`` becomes ``auc`` (unless an ``auc`` is already there)."""
    out = {}
    for key, value in (metrics or {}).items():
        if value is None:
            continue
        out[str(key).lower()] = float(value)
    if "gauc" in out and "auc" not in out:
        out["auc"] = out.pop("gauc")
    return out


def ordered(names):
    """Metric names in table order: by family (Recall, Hit, Precision, NDCG, MRR, MAP, AUC), then cut-off."""
    families = ("recall", "hit", "precision", "ndcg", "mrr", "map", "auc")

    def key(name):
        base, _, k = name.partition("@")
        rank = families.index(base) if base in families else len(families)
        return (rank, base, int(k) if k.isdigit() else 0, name)

    return sorted(names, key=key)


def display_name(metric):
    """``ndcg@10`` -> ``NDCG@10``; ``auc`` -> ``AUC``."""
    base, at, k = metric.partition("@")
    return _NAMES.get(base, base) + at + k


def views_of(record):
    """{view: normalised metrics} of a record (``overall`` first, then warm, cold-start, others)."""
    views = {view: normalize(m) for view, m in (record.get("metrics") or {}).items()}
    return {v: views[v] for v in sorted(views, key=lambda v: (VIEW_ORDER + (v,)).index(v)) if views[v]}


def mean_std(values):
    """(mean, sample std or None for one value, n) of the finite values."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None, 0
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, None, 1
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var), len(values)


def _rows_in_order(records):
    rows = []
    for r in records:
        if r["row"] not in rows:
            rows.append(r["row"])
    return rows


def summarize(records):
    """Per row: model, seeds ok / failed, and {view: {metric: {mean, std, n}}} plus cost means."""
    summary = {}
    for row in _rows_in_order(records):
        mine = [r for r in records if r["row"] == row]
        ok = [r for r in mine if r.get("status") == "ok"]
        metrics = {}
        for view in dict.fromkeys(v for r in ok for v in views_of(r)):
            names = ordered(dict.fromkeys(m for r in ok for m in views_of(r).get(view, {})))
            metrics[view] = {}
            for name in names:
                mean, std, n = mean_std([views_of(r).get(view, {}).get(name) for r in ok])
                metrics[view][name] = {"mean": mean, "std": std, "n": n}
        cost = {}
        for field in COST_FIELDS:
            mean, std, n = mean_std([r.get(field) for r in ok if isinstance(r.get(field), (int, float))])
            if n:
                cost[field] = {"mean": mean, "std": std, "n": n}
        summary[row] = {
            "model": mine[0].get("model"),
            "seeds_ok": [r["seed"] for r in ok],
            "seeds_failed": [r["seed"] for r in mine if r.get("status") != "ok"],
            "metrics": metrics,
            "cost": cost,
            "device": ok[0].get("device") if ok else None,
            "view_users": dict(ok[0].get("view_users") or {}) if ok else {},
        }
    return summary


def fmt_metric(stat):
    """``0.1234`` (one seed) or ``0.1234 ± 0.0056``; ``-`` when missing."""
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{stat['mean']:.4f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std']:.4f}"
    return text


def _fmt_cost(field, stat):
    if not stat or stat.get("mean") is None:
        return "-"
    value = stat["mean"]
    if field == "n_params":
        return f"{int(round(value)):,}"
    if field in ("best_epoch", "epochs"):
        return f"{value:.1f}" if stat.get("n", 1) > 1 and value != int(value) else f"{int(value)}"
    if field.endswith("_mb"):
        return f"{value:.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _mark_best(cells, values, lower_is_better=False):
    """Bold the best value(s) of a column (ties all marked); values may hold None."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return cells
    best = min(present) if lower_is_better else max(present)
    return [f"**{c}**" if v is not None and abs(v - best) < 1e-12 else c for c, v in zip(cells, values)]


def _table(header, columns):
    """Markdown table: ``header`` names, ``columns`` a list of cell lists (one per header name)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for cells in zip(*columns):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metric_table(summary, view, metrics=None):
    """Markdown table of ``view`` metrics per row (mean ± std), best per column in bold."""
    rows = [r for r in summary if view in summary[r]["metrics"]]
    if not rows:
        return None
    names = metrics or ordered(dict.fromkeys(m for r in rows for m in summary[r]["metrics"][view]))
    columns = [rows, [", ".join(str(s) for s in summary[r]["seeds_ok"]) or "-" for r in rows]]
    for name in names:
        stats = [summary[r]["metrics"][view].get(name) for r in rows]
        cells = [fmt_metric(s) for s in stats]
        columns.append(_mark_best(cells, [s["mean"] if s else None for s in stats]))
    return _table(["Model", "Seeds"] + [display_name(n) for n in names], columns)


def cost_table(summary):
    rows = [r for r in summary if summary[r]["seeds_ok"]]
    if not rows:
        return None
    header = ["Model", "Parameters", "Best epoch", "Epochs run", "Train s/epoch", "Eval s", "Peak RAM MB"]
    fields = ["n_params", "best_epoch", "epochs", "train_seconds_per_epoch", "eval_seconds", "peak_memory_mb"]
    if any("peak_gpu_memory_mb" in summary[r]["cost"] for r in rows):
        header.append("Peak GPU MB")
        fields.append("peak_gpu_memory_mb")
    columns = [rows]
    for field in fields:
        stats = [summary[r]["cost"].get(field) for r in rows]
        cells = [_fmt_cost(field, s) for s in stats]
        if field in ("train_seconds_per_epoch", "eval_seconds", "peak_memory_mb", "peak_gpu_memory_mb"):
            cells = _mark_best(cells, [s["mean"] if s else None for s in stats], lower_is_better=True)
        columns.append(cells)
    columns.append([summary[r]["device"] or "-" for r in rows])
    return _table(header + ["Device"], columns)


def markdown(records, meta):
    """The ``report.md`` text."""
    from recbole_blairclip.benchmark.reference import reference_section

    summary = summarize(records)
    seeds = meta.get("seeds") or sorted({r["seed"] for r in records})
    lines = [
        f"# Benchmark: {meta.get('dataset')} ({meta.get('run')})",
        "",
        f"Command: `{meta.get('command', '')}`",
        "",
        f"{len(summary)} model(s) x {len(seeds)} seed(s) ({', '.join(str(s) for s in seeds)}); report written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Test metrics, full-sort ranking over every item; mean ± sample standard "
        "deviation over seeds; **bold** = best in its column (time and memory: lowest).",
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
    cost = cost_table(summary)
    if cost:
        lines += ["", "## Cost", "", cost]
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed runs", ""]
        lines.append(_table(["Model", "Seed", "Error", "Log"], [
            [r["row"] for r in failed], [str(r["seed"]) for r in failed],
            [str(r.get("error") or "").replace("|", "\\|") for r in failed],
            [os.path.relpath(r["worker_log"], meta["run_dir"]) if r.get("worker_log") and meta.get("run_dir")
             else "-" for r in failed],
        ]))
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


def _atomic_write(path, write):
    tmp = f"{path}.tmp{os.getpid()}"
    mode = "wb" if path.endswith(".png") else "w"
    with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
        write(f)
    os.replace(tmp, path)


def write_csv(path, records):
    rows = csv_rows(records)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    head = [f for f in fields if f not in CSV_TAIL]
    fields = head + [f for f in CSV_TAIL if f in fields]

    def write(f):
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    _atomic_write(path, write)


def _bar_axes(ax, rows, stats, title):
    means = [s["mean"] if s and s.get("mean") is not None else 0.0 for s in stats]
    errs = [s["std"] if s and s.get("std") is not None else 0.0 for s in stats]
    ax.bar(range(len(rows)), means, yerr=errs if any(errs) else None, capsize=3, color=[f"C{i % 10}" for i in range(len(rows))])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(rows, rotation=35, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    for i, s in enumerate(stats):
        if s is None or s.get("mean") is None:
            ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7)


def plot_metrics(path, summary, dataset=""):
    """``metrics.png``: one panel per metric (Recall@10, Recall@50, NDCG@10, AUC), a bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if summary[r]["seeds_ok"]] or list(summary)
    fig, axes = plt.subplots(1, len(PLOT_METRICS), figsize=(3.2 * len(PLOT_METRICS), 3.6))
    for ax, metric in zip(axes, PLOT_METRICS):
        stats = [summary[r]["metrics"].get("overall", {}).get(metric) for r in rows]
        _bar_axes(ax, rows, stats, display_name(metric))
    n_seeds = max((len(summary[r]["seeds_ok"]) for r in rows), default=0)
    how = "mean ± std over seeds" if n_seeds > 1 else "one seed"
    fig.suptitle(f"{dataset}: test metrics ({how})", fontsize=11)
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_coldstart(path, summary, dataset=""):
    """``coldstart.png``: Recall@10 and NDCG@10 on all / warm / cold-start test users, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if summary[r]["seeds_ok"]] or list(summary)
    views = [v for v in VIEW_ORDER if any(v in summary[r]["metrics"] for r in rows)] or ["overall"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(views)
    for ax, metric in zip(axes, ("recall@10", "ndcg@10")):
        for j, view in enumerate(views):
            stats = [summary[r]["metrics"].get(view, {}).get(metric) for r in rows]
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(rows))]
            errs = [s["std"] if s and s["std"] is not None else 0.0 for s in stats]
            ax.bar(xs, [s["mean"] if s and s["mean"] is not None else 0.0 for s in stats], width,
                   yerr=errs if any(errs) else None, capsize=2,
                   label=VIEW_TITLES.get(view, view), color=f"C{j}")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(rows, rotation=35, ha="right", fontsize=8)
        ax.set_title(display_name(metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    note = "" if len(views) > 1 else " (no cold-start view in these results)"
    fig.suptitle(f"{dataset}: all vs warm vs cold-start test users{note}", fontsize=11)
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def write_all(run_dir, records, meta):
    """Write every output file of a benchmark into ``run_dir``; returns {name: path}."""
    summary = summarize(records)
    files = {name: os.path.join(run_dir, name) for name in
             ("results.csv", "results.json", "report.md", "metrics.png", "coldstart.png")}
    write_csv(files["results.csv"], records)
    payload = dict(meta, summary=summary, runs=records)
    _atomic_write(files["results.json"], lambda f: f.write(json.dumps(payload, indent=2) + "\n"))
    text = markdown(records, meta)
    _atomic_write(files["report.md"], lambda f: f.write(text))
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
