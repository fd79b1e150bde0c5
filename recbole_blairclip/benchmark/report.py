"""Benchmark outputs: ``results.csv``, ``results.json``, ``report.md``, ``metrics.png``, ``coldstart.png``.

Input: one record per (row, seed) as written by :mod:`recbole_blairclip.benchmark.worker`. Metric names
are normalised to lower case and RecBole's ``gauc`` is reported as ``auc`` (with one target per user it is
the per-user AUC over the full ranking; see DESIGN.md). Means and standard deviations are over the seeds
that finished (sample standard deviation, ``ddof=1``). Every file is written under a temporary name and
moved into place.

When a run saved its per-user ranks (``ranks.parquet``, :mod:`recbole_blairclip.evaluation.ranks`), its
metrics are recomputed from that file, and every view gets bootstrap intervals and paired tests over the
test users (:mod:`recbole_blairclip.benchmark.stats`; with several seeds, per-user values averaged over
the seeds): ``results.json`` holds them under ``statistics``, ``report.md`` shows the intervals and marks
with † the rows not significantly different from the best one, ``metrics.png`` draws the intervals.
"""
import csv
import io
import json
import math
import os
import time

from recbole_blairclip.io import replacing

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


def ranks_path(record):
    """The record's ranks file when it exists (its recorded path, else ``ranks.parquet`` in its run folder)."""
    for path in (record.get("ranks_file"), os.path.join(record.get("run_dir") or "", "ranks.parquet")):
        if path and os.path.isfile(path):
            return path
    return None


def load_ranks(records):
    """{(row, seed): ranks table} of the finished runs that saved their per-user ranks."""
    from recbole_blairclip.evaluation.ranks import read_ranks

    out = {}
    for r in records:
        path = ranks_path(r) if r.get("status") == "ok" else None
        if path:
            out[(r["row"], r["seed"])] = read_ranks(path)[0]
    return out


def _recomputed_views(record, table):
    """The record's views with every metric the ranks can give recomputed from them (full precision)."""
    from recbole_blairclip.evaluation.ranks import metrics_from_ranks

    views = views_of(record)
    cold = table["is_coldstart"]
    masks = {"overall": None, "coldstart": cold, "warm": ~cold}
    for view, metrics in views.items():
        if view in masks:
            metrics.update({k: v for k, v in metrics_from_ranks(table, list(metrics), masks[view]).items()
                            if v is not None})
    return views


def statistics(records, ranks, summary, meta=None):
    """{view: :func:`stats.compare_rows` result} over the rows whose every finished seed saved its ranks."""
    from recbole_blairclip.benchmark import stats

    models = (meta or {}).get("models") or {}
    out = {}
    tables = {}
    for row, info in summary.items():
        seeds = info["seeds_ok"]
        if seeds and all((row, s) in ranks for s in seeds):
            tables[row] = [ranks[(row, s)] for s in seeds]
    if not tables:
        return out
    ablations = {}
    for row, model in models.items():
        if row != model and model in tables and row in tables:
            ablations.setdefault(model, []).append(row)
    for view in VIEW_ORDER:
        names = ordered(dict.fromkeys(m for row in tables for m in summary[row]["metrics"].get(view, {})))
        users, per_user = stats.per_user_matrix(tables, names, view=view)
        if len(users) < 2:
            continue
        out[view] = stats.compare_rows(per_user, names, ablations)
        out[view]["n_users"] = int(len(users))
    return out


def attach(summary, stat):
    """Copy each row's interval and significance into its summary cell (``ci_low``, ``ci_high``, ``same_as_best``)."""
    for view, result in stat.items():
        for metric, entry in result["metrics"].items():
            for row, cell in entry["rows"].items():
                target = summary.get(row, {}).get("metrics", {}).get(view, {}).get(metric)
                if target is not None:
                    target.update(ci_low=cell["ci_low"], ci_high=cell["ci_high"],
                                  same_as_best=cell["not_different_from_best"], is_best=row == entry["best"])


def _rows_in_order(records):
    rows = []
    for r in records:
        if r["row"] not in rows:
            rows.append(r["row"])
    return rows


def summarize(records, ranks=None):
    """Per row: model, seeds ok / failed, and {view: {metric: {mean, std, n}}} plus cost means.

    ``ranks`` (:func:`load_ranks`): the metrics of those runs are recomputed from their per-user ranks.
    """
    ranks = ranks or {}
    summary = {}
    for row in _rows_in_order(records):
        mine = [r for r in records if r["row"] == row]
        ok = [r for r in mine if r.get("status") == "ok"]
        views = [_recomputed_views(r, ranks[(row, r["seed"])]) if (row, r["seed"]) in ranks else views_of(r)
                 for r in ok]
        metrics = {}
        for view in dict.fromkeys(v for vs in views for v in vs):
            names = ordered(dict.fromkeys(m for vs in views for m in vs.get(view, {})))
            metrics[view] = {}
            for name in names:
                mean, std, n = mean_std([vs.get(view, {}).get(name) for vs in views])
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
    """``0.1234`` (one seed) or ``0.1234 ± 0.0056``, then the bootstrap interval ``[0.1100, 0.1400]`` and
    ``†`` (not significantly different from the best row) when known; ``-`` when missing."""
    if not stat or stat.get("mean") is None:
        return "-"
    text = f"{stat['mean']:.4f}"
    if stat.get("std") is not None:
        text += f" ± {stat['std']:.4f}"
    if stat.get("ci_low") is not None and stat.get("ci_high") is not None:
        text += f" [{stat['ci_low']:.4f}, {stat['ci_high']:.4f}]"
    if stat.get("same_as_best") and not stat.get("is_best"):
        text += " †"
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


def stats_note(stat):
    """One paragraph saying how the intervals and the † marks are made."""
    method = next(iter(stat.values()))["method"]
    return (f"[a, b] = {method['level']:.0%} bootstrap interval of the mean ({method['n_resamples']} resamples of the "
            f"test users, seed {method['seed']}; several seeds: per-user values averaged over the seeds first). "
            f"† = not significantly different from the best row of its column: two-sided Wilcoxon signed-rank "
            f"test over the same test users, Holm-corrected over the rows, p >= {method['alpha']} (paired "
            "t-test p-values and every interval in `results.json` under `statistics`).")


def _fmt_p(p):
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.0e}"


def ablation_table(stat):
    """Markdown table: each variant vs its base row, per view and metric: difference (p Wilcoxon / p t, Holm)."""
    lines = []
    for view, result in stat.items():
        metrics = result["metrics"]
        first = next(iter(metrics.values()), {"rows": {}})
        for row, cell in first["rows"].items():
            if cell.get("vs_base"):
                lines.append((view, row, cell["vs_base"]["other"]))
    if not lines:
        return None
    names = ordered(dict.fromkeys(m for result in stat.values() for m in result["metrics"]))
    columns = [[f"{row} vs {base}" for _, row, base in lines],
               [VIEW_TITLES.get(view, view) for view, _, _ in lines]]
    for name in names:
        cells = []
        for view, row, _ in lines:
            test = ((stat[view]["metrics"].get(name) or {}).get("rows", {}).get(row) or {}).get("vs_base")
            if not test or test.get("mean_diff") is None:
                cells.append("-")
                continue
            mark = "\\*" if test["significant"] else ""
            cells.append(f"{test['mean_diff']:+.4f}{mark} ({_fmt_p(test['wilcoxon_p_holm'])} / "
                         f"{_fmt_p(test['ttest_p_holm'])})")
        columns.append(cells)
    return _table(["Rows", "Test users"] + [display_name(n) for n in names], columns)


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
    mode = "wb" if path.endswith(".png") else "w"
    with replacing(path) as tmp:
        with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)


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
    if any(s and s.get("ci_low") is not None for s in stats):  # bootstrap intervals (asymmetric)
        errs = [[max(m - s["ci_low"], 0.0) if s and s.get("ci_low") is not None else 0.0 for m, s in zip(means, stats)],
                [max(s["ci_high"] - m, 0.0) if s and s.get("ci_high") is not None else 0.0 for m, s in zip(means, stats)]]
    else:
        errs = [s["std"] if s and s.get("std") is not None else 0.0 for s in stats]
    has_err = any(any(e) for e in errs) if errs and isinstance(errs[0], list) else any(errs)
    ax.bar(range(len(rows)), means, yerr=errs if has_err else None, capsize=3, color=[f"C{i % 10}" for i in range(len(rows))])
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
    how = "mean over seeds" if n_seeds > 1 else "one seed"
    with_ci = any(s and s.get("ci_low") is not None for r in rows for s in summary[r]["metrics"].get("overall", {}).values())
    how += ", bars: 95% bootstrap interval" if with_ci else (", bars: ± std" if n_seeds > 1 else "")
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
    ranks = load_ranks(records)
    summary = summarize(records, ranks)
    stat = statistics(records, ranks, summary, meta)
    attach(summary, stat)
    files = {name: os.path.join(run_dir, name) for name in
             ("results.csv", "results.json", "report.md", "metrics.png", "coldstart.png")}
    write_csv(files["results.csv"], records)
    payload = dict(meta, summary=summary, statistics=stat, runs=records)
    _atomic_write(files["results.json"], lambda f: f.write(json.dumps(payload, indent=2) + "\n"))
    text = markdown(records, meta, summary, stat)
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
