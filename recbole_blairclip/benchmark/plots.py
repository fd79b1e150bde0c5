"""The figures of a benchmark: ``metrics.png`` (a panel per metric, a bar per row, bootstrap intervals or
± std) and ``coldstart.png`` (all / warm / cold-start test users side by side), written through a
temporary file."""
from recbole_blairclip.benchmark.metric_names import VIEW_ORDER, VIEW_TITLES, display_name
from recbole_blairclip.io import replacing

PLOT_METRICS = ("recall@10", "recall@50", "ndcg@10", "auc")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


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
    plt = _pyplot()
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
    _save(fig, path)
    plt.close(fig)


def plot_coldstart(path, summary, dataset=""):
    """``coldstart.png``: Recall@10 and NDCG@10 on all / warm / cold-start test users, per model."""
    plt = _pyplot()
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
    _save(fig, path)
    plt.close(fig)
