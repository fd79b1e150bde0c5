"""Statistics of a benchmark table over test users: paired tests, Holm correction, bootstrap intervals.

Pure functions on per-user metric values (numpy arrays aligned on the same test users; see
:func:`recbole_blairclip.evaluation.ranks.user_values`). NaN marks a user without a value (``auc`` of a user
with a single candidate); such users are left out of that metric's tests and means.

* :func:`paired_tests`: Wilcoxon signed-rank (scipy, zero differences dropped: ``zero_method="wilcox"``)
  and paired t-test (scipy ``ttest_rel``) of two rows over the same users, two-sided.
* :func:`holm`: Holm's step-down adjustment of a family of p-values.
* :func:`bootstrap_ci`: percentile bootstrap interval of each column's mean, users resampled with
  replacement (``numpy.random.default_rng(seed)``; resample *b* is ``rng.integers(0, n, n)``, the same
  resampled users for every column, so rows and metrics share them).
* :func:`compare_rows`: for every metric, each row against the best row (highest mean) and each ablation
  row against its base row, Holm-corrected within each family; a row is *not significantly different from
  the best* when its Holm-adjusted Wilcoxon p-value is at least ``alpha``.
"""
import warnings

import numpy as np
from scipy import stats as _scipy

ALPHA = 0.05
N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def paired_tests(a, b):
    """{n, mean_a, mean_b, mean_diff (a - b), wilcoxon_p, ttest_p} over the users where both have a value.

    Identical vectors (every difference 0) give p = 1 for both tests; a constant non-zero difference gives
    t-test p = 0 (scipy returns NaN for a zero variance).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    diff = a - b
    out = {"n": int(len(a)), "mean_a": _mean(a), "mean_b": _mean(b), "mean_diff": _mean(diff),
           "wilcoxon_p": None, "ttest_p": None}
    if len(a) < 2:
        return out
    if not diff.any():
        out.update(wilcoxon_p=1.0, ttest_p=1.0)
        return out
    out["wilcoxon_p"] = float(_scipy.wilcoxon(a, b, zero_method="wilcox").pvalue)
    if np.all(diff == diff[0]):
        out["ttest_p"] = 0.0
    else:
        out["ttest_p"] = float(_scipy.ttest_rel(a, b).pvalue)
    return out


def _mean(x):
    return float(np.mean(x)) if len(x) else None


def holm(pvalues):
    """Holm-adjusted p-values, in the input order (None / NaN entries stay None and are not counted).

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    values = [None if p is None or p != p else float(p) for p in pvalues]
    present = [i for i, p in enumerate(values) if p is not None]
    m = len(present)
    order = sorted(present, key=lambda i: values[i])
    out = [None] * len(values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[i]))
        out[i] = running
    return out


def bootstrap_means(values, n_resamples=N_RESAMPLES, seed=SEED, chunk=None):
    """(n_resamples, columns) means of ``values`` (users x columns; NaN = no value) over resampled users."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    rng = np.random.default_rng(seed)
    chunk = chunk or max(1, min(n_resamples, 4_000_000 // max(n, 1)))
    out = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        counts = np.bincount((np.arange(size)[:, None] * n + idx).ravel(), minlength=size * n).reshape(size, n)
        counts = counts.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + size] = (counts @ filled) / (counts @ valid)
    return out


def bootstrap_ci(values, n_resamples=N_RESAMPLES, seed=SEED, level=LEVEL):
    """(low, high) arrays: the percentile bootstrap interval of each column's mean (see the module doc)."""
    means = bootstrap_means(values, n_resamples, seed)
    tail = (1.0 - level) / 2 * 100
    low, high = np.nanpercentile(means, [tail, 100 - tail], axis=0)
    return low, high


def per_user_matrix(tables_by_row, metrics, view=None, value_fn=None):
    """Per-user values of every row on the users all rows share: ``{row: {metric: array}}`` (users sorted).

    ``tables_by_row``: {row: [ranks table per seed]} (dicts of columns with ``user_id`` and
    ``is_coldstart``); several seeds are averaged per user (NaN when a seed has no value). ``view``:
    None / ``overall`` (every user), ``coldstart`` or ``warm``. ``value_fn(table, metric)``: per-row values
    (default :func:`recbole_blairclip.evaluation.ranks.user_values`).
    """
    if value_fn is None:
        from recbole_blairclip.evaluation.ranks import user_values as value_fn
    per_row = {}
    for row, tables in tables_by_row.items():
        seeds = []
        for table in tables:
            keep = np.ones(len(table["user_id"]), dtype=bool)
            if view == "coldstart":
                keep = np.asarray(table["is_coldstart"], dtype=bool)
            elif view == "warm":
                keep = ~np.asarray(table["is_coldstart"], dtype=bool)
            users = np.asarray(table["user_id"]).astype(str)[keep]
            order = np.argsort(users, kind="stable")
            seeds.append((users[order], {m: _or_none(value_fn(table, m), keep, order) for m in metrics}))
        if seeds:
            per_row[row] = seeds
    if not per_row:
        return [], {}
    common = None
    for seeds in per_row.values():
        for users, _ in seeds:
            common = set(users) if common is None else common & set(users)
    common = np.array(sorted(common), dtype=str)
    out = {}
    for row, seeds in per_row.items():
        out[row] = {}
        for metric in metrics:
            stacked = []
            for users, values in seeds:
                if values[metric] is None:
                    continue
                stacked.append(values[metric][np.searchsorted(users, common)])
            if stacked:
                with warnings.catch_warnings():  # a user without a value in every seed stays NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[row][metric] = np.nanmean(np.vstack(stacked), axis=0)
    return common, out


def _or_none(values, keep, order):
    return None if values is None else np.asarray(values, dtype=np.float64)[keep][order]


def best_row(means):
    """The row with the highest mean ({row: mean or None}); the first one on ties; None if no mean."""
    present = [(row, m) for row, m in means.items() if m is not None and m == m]
    return max(present, key=lambda rm: rm[1])[0] if present else None


def compare_rows(per_user, metrics, ablations=None, alpha=ALPHA, n_resamples=N_RESAMPLES, seed=SEED, level=LEVEL):
    """Intervals and paired tests of a table.

    Args:
        per_user: {row: {metric: array over the same users, in the same order}}.
        metrics: metric names, in table order.
        ablations: {base row: [ablation rows]} (e.g. ``{"BLaIRCLIP": ["BLaIRCLIP-text", "BLaIRCLIP-noclip"]}``).

    Returns ``{"method": {...}, "metrics": {metric: {"best": row, "rows": {row: {mean, ci_low, ci_high,
    n_users, vs_best, vs_base}}}}}``; ``vs_best`` / ``vs_base`` hold :func:`paired_tests` plus the Holm-adjusted
    ``wilcoxon_p_holm`` / ``ttest_p_holm``, ``other`` (the row compared with) and ``significant`` (Holm
    Wilcoxon p < alpha); ``vs_best`` is None for the best row itself, ``vs_base`` None outside ablations.
    ``not_different_from_best`` is True for the best row and for rows whose difference is not significant.
    """
    rows = list(per_user)
    ablations = {base: [r for r in abl if r in per_user] for base, abl in (ablations or {}).items() if base in per_user}
    out = {"method": {"tests": "two-sided Wilcoxon signed-rank (zero differences dropped) and paired t-test over "
                               "test users, Holm-corrected within each family (rows vs the best row; ablations vs "
                               "their base row); marks use the Holm-adjusted Wilcoxon p-value",
                      "alpha": alpha, "interval": f"percentile bootstrap {level:.0%} interval of the mean, users "
                      f"resampled with replacement", "n_resamples": n_resamples, "seed": seed, "level": level},
           "metrics": {}}
    cells = [(metric, row) for metric in metrics for row in rows if per_user[row].get(metric) is not None]
    if not cells:
        return out
    # one bootstrap for every (metric, row) column: the same resampled users everywhere
    matrix = np.column_stack([np.asarray(per_user[row][metric], dtype=np.float64) for metric, row in cells])
    low_all, high_all = bootstrap_ci(matrix, n_resamples, seed, level)
    for metric in metrics:
        have = [row for m, row in cells if m == metric]
        if not have:
            continue
        index = [k for k, (m, _) in enumerate(cells) if m == metric]
        matrix_m, low, high = matrix[:, index], low_all[index], high_all[index]
        entry = {}
        for j, row in enumerate(have):
            col = matrix_m[:, j]
            col = col[~np.isnan(col)]
            entry[row] = {"mean": _mean(col), "ci_low": _finite(low[j]), "ci_high": _finite(high[j]),
                          "n_users": int(len(col)), "vs_best": None, "vs_base": None}
        best = best_row({r: entry[r]["mean"] for r in have})
        others = [r for r in have if r != best]
        _family(entry, "vs_best", [(r, best) for r in others], per_user, metric, alpha)
        for base, abl in ablations.items():
            if base in entry:
                _family(entry, "vs_base", [(r, base) for r in abl if r in entry], per_user, metric, alpha)
        for row in have:
            vs = entry[row]["vs_best"]
            entry[row]["not_different_from_best"] = row == best or (vs is not None and not vs["significant"])
        out["metrics"][metric] = {"best": best, "rows": entry}
    return out


def _finite(x):
    return float(x) if x == x else None


def _family(entry, key, pairs, per_user, metric, alpha):
    tests = [paired_tests(per_user[row][metric], per_user[other][metric]) for row, other in pairs]
    for name in ("wilcoxon_p", "ttest_p"):
        for test, adjusted in zip(tests, holm([t[name] for t in tests])):
            test[name + "_holm"] = adjusted
    for (row, other), test in zip(pairs, tests):
        p = test["wilcoxon_p_holm"]
        test.update(other=other, significant=bool(p is not None and p < alpha))
        entry[row][key] = test


__all__ = ["ALPHA", "best_row", "bootstrap_ci", "bootstrap_means", "compare_rows", "holm", "paired_tests"]
