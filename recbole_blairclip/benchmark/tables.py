"""The markdown tables of ``report.md``, built as pandas DataFrames and written by ``DataFrame.to_markdown``
(tabulate's pipe format: columns aligned, numbers right-aligned, ``|`` in a cell escaped).

Cells: ``mean ± std`` over the seeds, the bootstrap interval ``[low, high]`` and ``†`` (not significantly
different from the best row) when known, ``-`` when missing; **bold** = the best value of its column
(time and memory: the lowest)."""
import os

from recbole_blairclip.benchmark.metric_names import VIEW_TITLES, display_name, ordered
from recbole_blairclip.markdown import markdown_table

TIE = 1e-12  # values this close to the best are all marked best


def best_marks(means, lower_is_better=False):
    """Boolean DataFrame: True where a value is its column's best (ties all True), in columns with at least
    two values; ``means`` a DataFrame that may hold None / NaN."""
    means = means.astype(float)
    best = means.min() if lower_is_better else means.max()
    return means.sub(best).abs().lt(TIE) & means.count().ge(2)


def _bold(cells, marks):
    return [f"**{c}**" if mark else c for c, mark in zip(cells, marks)]


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


def _means(stats):
    """DataFrame of the ``mean`` of every cell of {column: [stat or None per row]}."""
    import pandas as pd

    return pd.DataFrame({name: [s.get("mean") if s else None for s in cells] for name, cells in stats.items()})


def metric_table(summary, view, metrics=None):
    """Markdown table of ``view`` metrics per row (mean ± std), best per column in bold."""
    rows = [r for r in summary if view in summary[r]["metrics"]]
    if not rows:
        return None
    names = metrics or ordered(dict.fromkeys(m for r in rows for m in summary[r]["metrics"][view]))
    stats = {name: [summary[r]["metrics"][view].get(name) for r in rows] for name in names}
    marks = best_marks(_means(stats))
    columns = {"Model": rows, "Seeds": [", ".join(str(s) for s in summary[r]["seeds_ok"]) or "-" for r in rows]}
    for name in names:
        columns[display_name(name)] = _bold([fmt_metric(s) for s in stats[name]], marks[name])
    return markdown_table(columns)


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


def _fmt_test(test):
    """``+0.0123* (p Wilcoxon / p t)`` of a variant-vs-base test; ``-`` when missing."""
    if not test or test.get("mean_diff") is None:
        return "-"
    mark = "\\*" if test["significant"] else ""
    return f"{test['mean_diff']:+.4f}{mark} ({_fmt_p(test['wilcoxon_p_holm'])} / {_fmt_p(test['ttest_p_holm'])})"


def ablation_table(stat):
    """Markdown table: each variant vs its base row, per view and metric: difference (p Wilcoxon / p t, Holm)."""
    lines = []
    for view, result in stat.items():
        first = next(iter(result["metrics"].values()), {"rows": {}})
        lines += [(view, row, cell["vs_base"]["other"]) for row, cell in first["rows"].items() if cell.get("vs_base")]
    if not lines:
        return None
    names = ordered(dict.fromkeys(m for result in stat.values() for m in result["metrics"]))
    columns = {"Rows": [f"{row} vs {base}" for _, row, base in lines],
               "Test users": [VIEW_TITLES.get(view, view) for view, _, _ in lines]}
    for name in names:
        columns[display_name(name)] = [
            _fmt_test(((stat[view]["metrics"].get(name) or {}).get("rows", {}).get(row) or {}).get("vs_base"))
            for view, row, _ in lines]
    return markdown_table(columns, text_columns=2)


COST_COLUMNS = {"n_params": "Parameters", "best_epoch": "Best epoch", "epochs": "Epochs run",
                "train_seconds_per_epoch": "Train s/epoch", "eval_seconds": "Eval s", "peak_memory_mb": "Peak RAM MB",
                "peak_gpu_memory_mb": "Peak GPU MB"}
LOWER_IS_BETTER = ("train_seconds_per_epoch", "eval_seconds", "peak_memory_mb", "peak_gpu_memory_mb")


def cost_table(summary):
    """Markdown table of the cost means per row (time and memory: lowest in bold), and the device."""
    rows = [r for r in summary if summary[r]["seeds_ok"]]
    if not rows:
        return None
    fields = [f for f in COST_COLUMNS if f != "peak_gpu_memory_mb"
              or any("peak_gpu_memory_mb" in summary[r]["cost"] for r in rows)]
    stats = {field: [summary[r]["cost"].get(field) for r in rows] for field in fields}
    marks = best_marks(_means(stats), lower_is_better=True)
    columns = {"Model": rows}
    for field in fields:
        cells = [_fmt_cost(field, s) for s in stats[field]]
        columns[COST_COLUMNS[field]] = _bold(cells, marks[field]) if field in LOWER_IS_BETTER else cells
    columns["Device"] = [summary[r]["device"] or "-" for r in rows]
    return markdown_table(columns, text_columns=("Model", "Device"))


def failed_table(records, run_dir=None):
    """Markdown table of the failed runs (row, seed, error, log relative to ``run_dir``); None when none failed."""
    failed = [r for r in records if r.get("status") != "ok"]
    if not failed:
        return None
    return markdown_table({
        "Model": [r["row"] for r in failed],
        "Seed": [str(r["seed"]) for r in failed],
        "Error": [str(r.get("error") or "") for r in failed],
        "Log": [os.path.relpath(r["worker_log"], run_dir) if r.get("worker_log") and run_dir else "-" for r in failed],
    }, text_columns=("Model", "Error", "Log"))
