"""TFIDF full-sort evaluation speed and peak memory on a synthetic catalogue, against dense dot products.

Writes a synthetic leave-one-out dataset (default 94,000 items with Zipf-distributed text of 20-200
words, users with 3-6 interactions) and measures, in one fresh process per case:

* ``tfidf``: TF-IDF fit (model construction), then the protocol trainer's full-sort test evaluation
  (scores for every item, history masks, ranks, metrics);
* ``dense``: the same evaluation for an untrained BPR (64-dim embeddings), i.e. the same number of
  dense dot products (users x items x 64) plus the same protocol cost;
* ``dense_recbole`` (with ``--recbole``): that BPR evaluation through RecBole's own trainer and collector
  (sort-based ranks), for the cost of the protocol against RecBole's evaluation;
* ``score_only``: TFIDF ``full_sort_predict`` alone against ``users @ items.T`` with 64-dim embeddings,
  and against the same TF-IDF dot products done densely over the whole vocabulary (timed on 32 users x
  1,000 items, extrapolated to the catalogue) with the size a dense items x vocabulary matrix would take.

Peak memory is the process's resident-set high-water mark during the measured step (VmHWM, reset
through /proc/self/clear_refs before the step), in MiB above the resident size at its start.

    python benchmarks/tfidf_speed.py                         # 94K items, 4,000 test users, CPU
    python benchmarks/tfidf_speed.py --items 20000 --users 1000 --device cuda
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def write_dataset(folder, name, n_items, n_users, vocab=50_000, seed=0):
    """Synthetic atomic dataset (FORMAT.md): Zipf word frequencies, users of 3-6 interactions."""
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    weights = 1.0 / (np.arange(vocab) + 10.0)
    lengths = rng.integers(20, 201, n_items)
    words = rng.choice(vocab, size=int(lengths.sum()), p=weights / weights.sum())
    with open(os.path.join(path, f"{name}.item"), "w") as f:
        f.write("item_id:token\titem_text:token_seq\n")
        start = 0
        for i, n in enumerate(lengths):
            f.write(f"i{i}\t" + " ".join(f"w{w}" for w in words[start : start + n]) + "\n")
            start += n
    plain = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    out = {p: [plain + ("" if p == "train" else "\titem_id_list:token_seq")] for p in ("train", "train_seq", "valid", "test")}
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(3, 7)), replace=False)
        for k, item in enumerate(items):
            line = f"u{u}\ti{item}\t5.0\t{1_600_000_000 + k}.0"
            hist = " ".join(f"i{x}" for x in items[:k])
            part = "test" if k == len(items) - 1 else ("valid" if k == len(items) - 2 else "train")
            if part == "train":
                out["train"].append(line)
                if k:
                    out["train_seq"].append(f"{line}\t{hist}")
            else:
                out[part].append(f"{line}\t{hist}")
    for part, lines in out.items():
        with open(os.path.join(path, f"{name}.{part}.inter"), "w") as f:
            f.write("\n".join(lines) + "\n")


def _mem():
    status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(("VmRSS", "VmHWM"))}
    return status["VmRSS"] / 1024, status["VmHWM"] / 1024


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(step):
    """(seconds, peak MiB above the start) of calling ``step()``; CUDA peak when on a GPU."""
    import torch

    _reset_peak()
    start_rss, _ = _mem()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    peak = _mem()[1] - start_rss
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return out, seconds, peak, gpu


def run_case(args):
    import torch
    from recbole.data.interaction import Interaction

    from recbole_blairclip.quick_start import build_model, build_trainer, make_config, prepare

    model_name = "TFIDF" if args.case in ("tfidf", "score_only") else "BPR"
    import recbole_blairclip.quick_start as quick_start

    if args.case == "dense_recbole":  # RecBole's plain trainer class, no protocol mixed in
        quick_start.protocol_trainer_class = lambda base: base
    config = make_config(
        model_name,
        args.name,
        config_dict={
            "data_path": args.data,
            "output_dir": os.path.join(args.data, "out"),
            "show_progress": False,
            "eval_batch_size": args.batch_users * (args.items + 1),
            "embedding_size": 64,
            "device": args.device,
            "use_gpu": args.device != "cpu",
        },
    )
    t = time.perf_counter()
    _, train_data, _, test_data = prepare(config)
    load_seconds = time.perf_counter() - t
    model, fit_seconds, fit_peak, _ = measure(lambda: build_model(config, train_data))
    report = {"case": args.case, "items": args.items, "device": str(config["device"]), "load_s": load_seconds}
    if args.case == "score_only":
        users = torch.arange(1, min(args.users, model.n_users - 1) + 1)
        batches = users.split(args.batch_users)
        user_emb = torch.randn(model.n_users, 64, device=config["device"])
        item_emb = torch.randn(model.n_items, 64, device=config["device"])

        def tfidf_batch(b):
            return model.full_sort_predict(Interaction({"user_id": b}).to(config["device"]))

        def dense_batch(b):
            return user_emb[b.to(config["device"])] @ item_emb.T

        # first call builds the CPU scorer (term split by cost, head block, item tiles), cached afterwards
        _, split_build_s, split_build_peak, _ = measure(lambda: tfidf_batch(batches[0][:1]))
        # TF-IDF and dense batches interleaved, so that other processes' load hits both alike
        s_t = s_d = 0.0
        p_t = p_d = 0.0
        for b in batches:
            _, s, p, _ = measure(lambda: tfidf_batch(b))
            s_t, p_t = s_t + s, max(p_t, p)
            _, s, p, _ = measure(lambda: dense_batch(b))
            s_d, p_d = s_d + s, max(p_d, p)
        g_t = g_d = None
        # exact scores: against an independent float64 scipy computation (first 32 users): profile =
        # history weights x X, cosine with every item row
        import scipy.sparse as sp

        check = batches[0][:32]
        hist, lengths = model.history(Interaction({"user_id": check}))
        weights = model.history_weights(hist, lengths).double().numpy()
        X = sp.csr_matrix((model.lexical.item_val.cpu().numpy(), model.lexical.item_col.cpu().numpy(),
                           model.lexical.item_crow.cpu().numpy()), shape=(model.n_items, int(model.lexical.n_terms))).astype(np.float64)
        keep = weights > 0
        rows = np.broadcast_to(np.arange(len(check))[:, None], keep.shape)[keep]
        P = sp.csr_matrix((weights[keep], (rows, hist.numpy()[keep])), shape=(len(check), model.n_items)) @ X
        norms = (np.sqrt(np.asarray(P.multiply(P).sum(1)).ravel())[:, None]
                 * np.sqrt(np.asarray(X.multiply(X).sum(1)).ravel())[None, :])
        dots = (P @ X.T).toarray()
        old = torch.from_numpy(np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0))
        new = tfidf_batch(check).view(len(check), -1).cpu().double()
        report.update(split_build_s=split_build_s, split_build_peak_mib=split_build_peak,
                      **({} if str(config["device"]) != "cpu" else {
                          f"n_{k}": getattr(model.lexical.cpu_scorer(), f"n_{k}") for k in ("head", "mid", "rare")}),
                      max_abs_diff_vs_scipy=float((old - new).abs().max()),
                      ratio_dense_over_tfidf_time=s_t / s_d)
        # the same TF-IDF dot products done densely (vocabulary-wide vectors): 32 users x 1,000 items,
        # extrapolated to every item; a dense items x vocabulary matrix would need items * terms * 4 bytes
        n_terms = int(model.lexical.n_terms)
        sample_items = torch.arange(1, min(1001, model.n_items)).tolist()
        dense_items = torch.zeros(len(sample_items), n_terms, device=config["device"])  # 1,000 x vocabulary
        for r, i in enumerate(sample_items):
            a, b = int(model.lexical.item_crow[i]), int(model.lexical.item_crow[i + 1])
            dense_items[r, model.lexical.item_col[a:b]] = model.lexical.item_val[a:b]
        dense_users = torch.randn(32, n_terms, device=config["device"])
        _, s_v, _, _ = measure(lambda: dense_users @ dense_items.T)
        report.update(
            dense_vocab_users_per_s_est=32 / (s_v * model.n_items / len(sample_items)),
            dense_vocab_matrix_gib=model.n_items * n_terms * 4 / 2**30,
        )
        report.update(
            users=len(users),
            tfidf_users_per_s=len(users) / s_t, tfidf_peak_mib=p_t, tfidf_gpu_peak_mib=g_t,
            dense_users_per_s=len(users) / s_d, dense_peak_mib=p_d, dense_gpu_peak_mib=g_d,
            n_terms=int(model.lexical.n_terms), nnz=int(model.lexical.item_val.numel()),
        )
    else:
        trainer = build_trainer(config, model)
        result, seconds, peak, gpu = measure(lambda: trainer.evaluate(test_data, load_best_model=False))
        result = {("auc" if k == "gauc" else k): v for k, v in result.items()}
        n = test_data.sample_size
        report.update(users=n, eval_s=seconds, users_per_s=n / seconds, eval_peak_mib=peak, gpu_peak_mib=gpu,
                      fit_s=fit_seconds, fit_peak_mib=fit_peak, auc=float(result["auc"]))
    print(json.dumps(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=94_000)
    parser.add_argument("--users", type=int, default=4_000, help="test users (each has one target)")
    parser.add_argument("--batch-users", type=int, default=256, help="users per evaluation batch")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--recbole", action="store_true", help="also time RecBole's own evaluation (BPR)")
    parser.add_argument("--cases", default="tfidf,dense,score_only",
                        help="comma-separated cases to run (tfidf, dense, score_only, dense_recbole)")
    parser.add_argument("--case", choices=["tfidf", "dense", "dense_recbole", "score_only"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.name = "synthetic"
    if args.case:
        return run_case(args)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_dataset(tmp, args.name, args.items, args.users)
        print(f"# wrote {args.items} items, {args.users} users in {time.perf_counter() - t:.1f} s", flush=True)
        for case in args.cases.split(",") + (["dense_recbole"] if args.recbole else []):
            cmd = [sys.executable, __file__, "--case", case, "--data", tmp, "--items", str(args.items),
                   "--users", str(args.users), "--batch-users", str(args.batch_users), "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
            if out.returncode or not lines:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            print(lines[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
