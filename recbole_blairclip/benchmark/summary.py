"""Per-row aggregation of benchmark records: :func:`summarize` (mean, sample std and count over the seeds
that finished, through pandas ``groupby``), metrics recomputed from the runs' per-user ranks files, and
:func:`statistics` / :func:`attach` (bootstrap intervals and paired tests, :mod:`.stats`)."""
import math
import os

from recbole_blairclip.benchmark.metric_names import VIEW_ORDER, normalize, ordered

COST_FIELDS = ("n_params", "best_epoch", "epochs", "train_seconds_per_epoch", "fit_seconds", "eval_seconds",
               "peak_memory_mb", "peak_gpu_memory_mb")


def views_of(record):
    """{view: normalised metrics} of a record (``overall`` first, then warm, cold-start, others)."""
    views = {view: normalize(m) for view, m in (record.get("metrics") or {}).items()}
    return {v: views[v] for v in sorted(views, key=lambda v: (VIEW_ORDER + (v,)).index(v)) if views[v]}


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


def _number(value):
    return None if value is None or not math.isfinite(value) else float(value)


def mean_std(values, keys):
    """{key: {mean, std, n}} of ``values`` ((*key, value) tuples) grouped by key: over the finite values,
    sample standard deviation (``ddof=1``), None for one value; mean None and n 0 when none is finite."""
    import pandas as pd

    frame = pd.DataFrame(values, columns=[*keys, "value"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").where(lambda v: v.abs() != math.inf)
    grouped = frame.groupby(list(keys), sort=False)["value"].agg(["mean", "std", "count"])
    out = {}
    for key, row in grouped.iterrows():
        out[key] = {"mean": _number(row["mean"]), "std": _number(row["std"]), "n": int(row["count"])}
    return out


def summarize(records, ranks=None):
    """Per row: model, seeds ok / failed, and {view: {metric: {mean, std, n}}} plus cost means.

    ``ranks`` (:func:`load_ranks`): the metrics of those runs are recomputed from their per-user ranks.
    """
    ranks = ranks or {}
    summary = {}
    for row in dict.fromkeys(r["row"] for r in records):
        mine = [r for r in records if r["row"] == row]
        ok = [r for r in mine if r.get("status") == "ok"]
        views = [_recomputed_views(r, ranks[(row, r["seed"])]) if (row, r["seed"]) in ranks else views_of(r)
                 for r in ok]
        cells = mean_std([(view, name, value) for vs in views for view, ms in vs.items() for name, value in ms.items()],
                         ("view", "metric"))
        metrics = {}
        for view in dict.fromkeys(v for vs in views for v in vs):
            names = ordered(dict.fromkeys(m for vs in views for m in vs.get(view, {})))
            metrics[view] = {name: cells[(view, name)] for name in names}
        cost = mean_std([(field, r[field]) for r in ok for field in COST_FIELDS
                         if isinstance(r.get(field), (int, float))], ("field",))
        summary[row] = {
            "model": mine[0].get("model"),
            "seeds_ok": [r["seed"] for r in ok],
            "seeds_failed": [r["seed"] for r in mine if r.get("status") != "ok"],
            "metrics": metrics,
            "cost": {field: cost[field] for field in COST_FIELDS if cost.get(field, {}).get("n")},
            "device": ok[0].get("device") if ok else None,
            "view_users": dict(ok[0].get("view_users") or {}) if ok else {},
        }
    return summary


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
