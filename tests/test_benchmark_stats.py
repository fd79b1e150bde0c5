"""Benchmark statistics: paired tests, Holm, bootstrap intervals, and the report built from ranks files.

Expected values come from independent computations: scipy's tests on per-user metrics written out by hand
from hand-made rank vectors, a brute-force Holm, a plain numpy bootstrap loop and scipy.stats.bootstrap.
"""
import json
import os

import numpy as np
import pytest
from conftest import table_rows
from scipy import stats as scipy_stats

from recbole_blairclip.benchmark import report, stats
from recbole_blairclip.benchmark.summary import load_ranks
from recbole_blairclip.evaluation.ranks import ranks_table, write_ranks

N_USERS = 80


def _ranks(seed, quality):
    """Hand-made ranks of N_USERS users among 100 candidates: smaller ``quality`` = better ranks."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(1.0 / quality, N_USERS), 100)


def _table(ranks, users=None, cold=None):
    users = [f"u{i}" for i in range(N_USERS)] if users is None else users
    cold = np.arange(N_USERS) % 4 == 0 if cold is None else cold
    return ranks_table(users, [f"i{i}" for i in range(len(users))], ranks, ranks.astype(float),
                       np.full(len(users), 100), cold)


def _ndcg10(rank):  # written out: 1 / log2(rank + 1) inside the top 10, else 0
    return np.array([1.0 / np.log2(r + 1) if r <= 10 else 0.0 for r in rank])


def _brute_holm(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    return [max(min(1.0, (m - k) * p[order[k]]) for k in range(order.index(i) + 1)) for i in range(m)]


def test_holm_textbook_and_brute_force():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 8)))
        assert stats.holm(p) == pytest.approx(_brute_holm(p))
    assert stats.holm([0.02, None, 0.04]) == pytest.approx([0.04, None, 0.04])


def test_paired_tests_equal_scipy_on_hand_made_ranks():
    a, b = _ndcg10(_ranks(0, 8)), _ndcg10(_ranks(1, 20))
    got = stats.paired_tests(a, b)
    assert got["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-12)
    assert got["ttest_p"] == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert got["mean_diff"] == pytest.approx(a.mean() - b.mean()) and got["n"] == N_USERS
    same = stats.paired_tests(a, a)
    assert same["wilcoxon_p"] == 1.0 and same["ttest_p"] == 1.0
    with_nan = a.copy()
    with_nan[:5] = np.nan  # users without a value are left out of both tests
    got = stats.paired_tests(with_nan, b)
    assert got["n"] == N_USERS - 5
    assert got["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(a[5:], b[5:]).pvalue, rel=1e-12)


def test_bootstrap_equals_a_plain_numpy_loop_and_scipy():
    values = np.column_stack([_ndcg10(_ranks(0, 8)), (_ranks(1, 20) <= 10).astype(float)])
    low, high = stats.bootstrap_ci(values, n_resamples=500, seed=3)
    rng = np.random.default_rng(3)
    means = np.array([values[rng.integers(0, N_USERS, N_USERS)].mean(axis=0) for _ in range(500)])
    assert low == pytest.approx(np.percentile(means, 2.5, axis=0), abs=1e-12)
    assert high == pytest.approx(np.percentile(means, 97.5, axis=0), abs=1e-12)
    assert np.allclose(stats.bootstrap_means(values, 500, 3, chunk=7), stats.bootstrap_means(values, 500, 3),
                       rtol=0, atol=1e-12)  # chunking does not change the resamples
    for j in range(2):
        ref = scipy_stats.bootstrap((values[:, j],), np.mean, n_resamples=4000, method="percentile", rng=0)
        width = ref.confidence_interval.high - ref.confidence_interval.low
        assert low[j] == pytest.approx(ref.confidence_interval.low, abs=0.15 * width)
        assert high[j] == pytest.approx(ref.confidence_interval.high, abs=0.15 * width)
        assert low[j] < values[:, j].mean() < high[j]


def test_compare_rows_best_ablations_and_holm():
    ranks = {"Good": _ranks(0, 5), "Close": _ranks(0, 5) + (np.arange(N_USERS) % 3 == 0), "Bad": _ranks(2, 40),
             "Good-abl": _ranks(3, 30)}
    per_user = {row: {"ndcg@10": _ndcg10(r), "recall@10": (r <= 10).astype(float)} for row, r in ranks.items()}
    result = stats.compare_rows(per_user, ["ndcg@10", "recall@10"], {"Good": ["Good-abl"]}, n_resamples=200)
    entry = result["metrics"]["ndcg@10"]
    assert entry["best"] == "Good"
    others = ["Close", "Bad", "Good-abl"]
    raw = [scipy_stats.wilcoxon(per_user[r]["ndcg@10"], per_user["Good"]["ndcg@10"]).pvalue for r in others]
    for row, expected in zip(others, _brute_holm(raw)):
        vs = entry["rows"][row]["vs_best"]
        assert vs["other"] == "Good" and vs["wilcoxon_p_holm"] == pytest.approx(expected, rel=1e-12)
        assert vs["significant"] == (expected < 0.05)
        assert entry["rows"][row]["not_different_from_best"] == (expected >= 0.05)
    assert entry["rows"]["Good"]["vs_best"] is None and entry["rows"]["Good"]["not_different_from_best"]
    assert not entry["rows"]["Bad"]["not_different_from_best"]
    abl = entry["rows"]["Good-abl"]["vs_base"]
    t = scipy_stats.ttest_rel(per_user["Good-abl"]["ndcg@10"], per_user["Good"]["ndcg@10"]).pvalue
    assert abl["other"] == "Good" and abl["ttest_p_holm"] == pytest.approx(t, rel=1e-12)  # a family of one
    assert entry["rows"]["Close"]["vs_base"] is None
    cell = entry["rows"]["Bad"]
    assert cell["ci_low"] < cell["mean"] < cell["ci_high"] and cell["n_users"] == N_USERS


def test_per_user_matrix_aligns_users_averages_seeds_and_views():
    r1, r2, other = _ranks(0, 5), _ranks(1, 5), _ranks(2, 9)
    perm = np.random.default_rng(0).permutation(N_USERS)
    users = np.array([f"u{i}" for i in range(N_USERS)])
    cold = np.arange(N_USERS) % 4 == 0
    shuffled = _table(r2[perm], users[perm], cold[perm])  # same users, another order
    tables = {"A": [_table(r1), shuffled], "B": [_table(other)]}
    common, per_user = stats.per_user_matrix(tables, ["ndcg@10"])
    order = np.argsort(users)
    assert list(common) == sorted(users)
    assert per_user["A"]["ndcg@10"] == pytest.approx(((_ndcg10(r1) + _ndcg10(r2)) / 2)[order])
    assert per_user["B"]["ndcg@10"] == pytest.approx(_ndcg10(other)[order])
    common, per_user = stats.per_user_matrix(tables, ["ndcg@10"], view="coldstart")
    assert sorted(common) == sorted(users[cold])
    assert per_user["B"]["ndcg@10"].mean() == pytest.approx(_ndcg10(other)[cold].mean())


def _records(tmp_path, rows, seeds):
    records = []
    for k, (row, quality) in enumerate(rows.items()):
        for seed in seeds:
            folder = tmp_path / row / f"seed{seed}"
            folder.mkdir(parents=True)
            table = _table(_ranks(10 * k + seed, quality))
            path = write_ranks(str(folder / "ranks.parquet"), table)
            records.append({"row": row, "model": row.split("-")[0], "seed": seed, "status": "ok",
                            "run_dir": str(folder), "ranks_file": path, "view_users": {"overall": N_USERS},
                            "metrics": {"overall": {"ndcg@10": 0.0, "recall@10": 0.0},  # recomputed from ranks
                                        "coldstart": {"ndcg@10": 0.0}, "warm": {"ndcg@10": 0.0}}})
    return records


def test_report_is_built_from_the_ranks_files(tmp_path):
    rows = {"Best": 4, "Twin": 4.2, "Weak": 60, "Best-abl": 30}
    records = _records(tmp_path / "runs", rows, seeds=[1, 2])
    meta = {"dataset": "tiny", "run": "t", "run_dir": str(tmp_path), "seeds": [1, 2],
            "models": {"Best": "Best", "Twin": "Twin", "Weak": "Weak", "Best-abl": "Best"}}
    files = report.write_all(str(tmp_path), records, meta)
    payload = json.load(open(files["results.json"], encoding="utf-8"))
    ranks = load_ranks(records)
    # per-seed means recomputed from the parquet files, mean ± std over the seeds
    best_means = [_ndcg10(ranks[("Best", s)]["rank"]).mean() for s in (1, 2)]
    cell = payload["summary"]["Best"]["metrics"]["overall"]["ndcg@10"]
    assert cell["mean"] == pytest.approx(np.mean(best_means)) and cell["std"] == pytest.approx(np.std(best_means, ddof=1))
    # statistics on per-user values averaged over the seeds
    overall = payload["statistics"]["overall"]["metrics"]["ndcg@10"]
    avg = {row: (_ndcg10(ranks[(row, 1)]["rank"]) + _ndcg10(ranks[(row, 2)]["rank"])) / 2 for row in rows}
    best = max(avg, key=lambda r: avg[r].mean())
    assert overall["best"] == best
    weak = overall["rows"]["Weak"]["vs_best"]
    assert weak["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(avg["Weak"], avg[best]).pvalue, rel=1e-9)
    assert weak["ttest_p"] == pytest.approx(scipy_stats.ttest_rel(avg["Weak"], avg[best]).pvalue, rel=1e-9)
    assert overall["rows"]["Best-abl"]["vs_base"]["other"] == "Best"
    order = np.argsort([f"u{i}" for i in range(N_USERS)])  # the statistics order users by their token
    low, high = stats.bootstrap_ci(np.column_stack([avg[r][order] for r in rows]))
    assert [overall["rows"][r]["ci_low"] for r in rows] == pytest.approx(list(low))
    assert [overall["rows"][r]["ci_high"] for r in rows] == pytest.approx(list(high))
    assert set(payload["statistics"]) == {"overall", "coldstart", "warm"}
    assert payload["statistics"]["coldstart"]["n_users"] == N_USERS // 4
    text = open(files["report.md"], encoding="utf-8").read()
    header, *cells = table_rows(text, "## Test metrics (all test users)")
    ndcg = {row[0]: row[header.index("NDCG@10")] for row in cells}
    weak_cell, twin_cell = ndcg["Weak"], ndcg["Twin"]
    assert f"[{overall['rows']['Weak']['ci_low']:.4f}, {overall['rows']['Weak']['ci_high']:.4f}]" in weak_cell
    assert "†" not in weak_cell and not overall["rows"]["Weak"]["not_different_from_best"]
    assert ("†" in twin_cell) == (overall["rows"]["Twin"]["not_different_from_best"] and best != "Twin")
    ablations = table_rows(text, "## Ablations: variant minus its base model")
    assert ["Best-abl vs Best", "all"] in [cells[:2] for cells in ablations]
    assert "bootstrap interval" in text


def test_report_without_ranks_files_keeps_the_recorded_metrics(tmp_path):
    records = _records(tmp_path / "runs", {"A": 4, "B": 9}, seeds=[1])
    for r in records:
        os.remove(r["ranks_file"])
        r["metrics"]["overall"]["ndcg@10"] = 0.5
    files = report.write_all(str(tmp_path), records, {"dataset": "tiny", "run": "t", "seeds": [1]})
    payload = json.load(open(files["results.json"], encoding="utf-8"))
    assert payload["statistics"] == {}
    assert payload["summary"]["A"]["metrics"]["overall"]["ndcg@10"]["mean"] == 0.5
    assert "†" not in open(files["report.md"], encoding="utf-8").read()
