"""BLaIRCLIP speed and quality benchmarks (issues 4 and 8), ratios measured in one run on the same data.

Parts (``--part``):

* ``epoch``: training time per epoch of RecBole's SASRec (per-prefix rows), BLaIRCLIP in its own
  per-prefix mode (``train_rows: prefix``) and BLaIRCLIP's default one-row-per-user mode, all with the same
  hidden size, layers and max length, plus full-sort evaluation throughput (test users / s) of SASRec
  and BLaIRCLIP. On a slow machine ``--batches N`` times the first N training batches of an epoch
  (after one warm-up batch) and extrapolates to the whole epoch (reported as such).
* ``recall``: test Recall@10 / NDCG@10 after the same number of epochs, per-prefix vs per-user mode,
  over several seeds.

The synthetic dataset (written in the project's atomic format, with random but topic-structured text and
image features) has the shape of a real Amazon category: median history about 6, at most 50 items.

    python benchmarks/blairclip_speed.py --part epoch --users 50000 --items 17000 --batches 15
    python benchmarks/blairclip_speed.py --part recall --users 5000 --items 1700 --epochs 10 --seeds 0 1 2
    python benchmarks/blairclip_speed.py --small      # a 2-minute smoke run of both parts
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# ----------------------------------------------------------------------------- synthetic data
def make_synthetic(root, name="synth", n_users=50000, n_items=17000, seed=0, text_dim=768, image_dim=512,
                   max_len=50, median_len=6.0, sigma=0.88, image_frac=0.9):
    """Write dataset_atomic-style files <root>/<name>/<name>.* plus random features; return the folder.

    Items belong to topics; users mostly stay in a topic and often move to the topic's next item, so a
    sequential model and the content features (topic centroid + noise) both carry signal.
    """
    from recbole_blairclip.features.store import read_items, write_features

    rng = np.random.default_rng(seed)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    n_topics = max(10, n_items // 85)
    topic_of = rng.integers(0, n_topics, n_items)
    members = [np.flatnonzero(topic_of == t) for t in range(n_topics)]
    members = [m if len(m) else np.array([t % n_items]) for t, m in enumerate(members)]
    weights = [1.0 / np.arange(1, len(m) + 1) ** 0.8 for m in members]
    weights = [w / w.sum() for w in weights]
    position = np.zeros(n_items, dtype=np.int64)
    for m in members:
        position[m] = np.arange(len(m))

    lengths = np.clip(np.round(rng.lognormal(np.log(median_len), sigma, n_users)), 2, max_len).astype(int)
    plain = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    seq_head = plain[:-1] + "\titem_id_list:token_seq\n"
    out = {"inter": [plain], "train": [plain], "train_seq": [seq_head], "valid": [seq_head], "test": [seq_head]}
    for u in range(n_users):
        topic = rng.integers(n_topics)
        items, seen = [], set()
        current = None
        for _ in range(lengths[u] * 3):
            if len(items) == lengths[u]:
                break
            draw = rng.random()
            if current is not None and draw < 0.35:
                m = members[topic_of[current]]
                nxt = m[(position[current] + 1) % len(m)]
            else:
                if draw > 0.85:
                    topic = rng.integers(n_topics)
                nxt = members[topic][rng.choice(len(members[topic]), p=weights[topic])]
            if nxt in seen:
                continue
            seen.add(nxt)
            items.append(int(nxt))
            current = nxt
        if len(items) < 2:
            continue
        t0 = 1_600_000_000 + int(rng.integers(0, 10_000_000))
        n = len(items)
        for k, item in enumerate(items):
            line = f"u{u}\ti{item}\t5.0\t{t0 + 3600 * k}.0"
            hist = " ".join(f"i{x}" for x in items[max(0, k - max_len):k])
            out["inter"].append(line + "\n")
            part = "test" if k == n - 1 else ("valid" if k == n - 2 and n >= 3 else "train")
            if part == "train":
                out["train"].append(line + "\n")
                if k > 0:
                    out["train_seq"].append(f"{line}\t{hist}\n")
            else:
                out[part].append(f"{line}\t{hist}\n")
    for part, lines in out.items():
        suffix = "inter" if part == "inter" else f"{part}.inter"
        with open(os.path.join(folder, f"{name}.{suffix}"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    with open(os.path.join(folder, f"{name}.item"), "w", encoding="utf-8") as f:
        f.write("item_id:token\titem_text:token_seq\n")
        f.writelines(f"i{i}\ttopic{topic_of[i]} product {i}\n" for i in range(n_items))

    items_table = read_items(os.path.join(folder, f"{name}.item"))
    order = np.array([int(x[1:]) for x in items_table.item_ids])
    text_centroids = rng.normal(size=(n_topics, text_dim)).astype(np.float32)
    image_centroids = rng.normal(size=(n_topics, image_dim)).astype(np.float32)
    text = text_centroids[topic_of[order]] + rng.normal(size=(n_items, text_dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    mask = rng.random(n_items) < image_frac
    image = (image_centroids[topic_of[order]] + rng.normal(size=(n_items, image_dim)).astype(np.float32))
    image = image / np.linalg.norm(image, axis=1, keepdims=True) * mask[:, None]
    write_features(folder, items_table, text=text, text_meta={"tag": "synth-text"}, image=image,
                   image_mask=mask, image_meta={"tag": "synth-image"})
    stats = {"users": int(n_users), "items": int(n_items), "interactions": len(out["inter"]) - 1,
             "train_seq_rows": len(out["train_seq"]) - 1, "median_len": float(np.median(lengths)),
             "max_len": int(lengths.max())}
    with open(os.path.join(folder, f"{name}.bench.json"), "w") as f:
        json.dump(stats, f)
    return folder, stats


# ----------------------------------------------------------------------------- timing helpers
def common_config(root, args, **extra):
    cfg = dict(data_path=root, output_dir=os.path.join(root, "out"), show_progress=False, seed=args.seed,
               train_batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, epochs=1,
               n_layers=args.layers, n_heads=2, inner_size=4 * args.hidden, MAX_ITEM_LIST_LENGTH=50,
               hidden_size=args.hidden, embedding_size=args.hidden, hidden_dropout_prob=0.2,
               attn_dropout_prob=0.2, use_gpu=args.device != "cpu", log_wandb=False)
    cfg.update(extra)
    return cfg


def setup(model, name, cfg):
    from recbole_blairclip.quick_start import build_model, build_trainer, make_config, prepare

    t0 = time.perf_counter()
    config = make_config(model, name, config_dict=cfg)
    _, train, valid, test = prepare(config)
    trainer = build_trainer(config, build_model(config, train))
    return config, train, test, trainer, time.perf_counter() - t0


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_epoch(trainer, train, max_batches=None):
    """Seconds for one epoch (or the first max_batches batches, extrapolated); the trainer's inner loop."""
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    n_total = len(train)
    timed, start, seconds = 0, None, 0.0
    for i, batch in enumerate(train):
        if i == 1:  # first batch = warm-up
            _sync(trainer.device)
            start = time.perf_counter()
        if max_batches is not None and timed >= max_batches:
            break
        batch = batch.to(trainer.device)
        optimizer.zero_grad()
        losses = model.calculate_loss(batch)
        loss = sum(losses) if isinstance(losses, tuple) else losses
        loss.backward()
        optimizer.step()
        if i >= 1:
            timed += 1
    _sync(trainer.device)
    if start is None:
        return 0.0, n_total, False
    seconds = time.perf_counter() - start
    full = max_batches is None or timed >= n_total - 1
    per_batch = seconds / max(timed, 1)
    return per_batch * n_total, n_total, full


def time_eval(trainer, test):
    _sync(trainer.device)
    t0 = time.perf_counter()
    result = trainer.evaluate(test, load_best_model=False, show_progress=False)
    _sync(trainer.device)
    seconds = time.perf_counter() - t0
    users = len(test._dataset.inter_feat)
    return users / seconds, seconds, {k: float(v) for k, v in result.items()}


# ----------------------------------------------------------------------------- parts
def _train_step(trainer, batch):
    batch = batch.to(trainer.device)
    trainer.optimizer.zero_grad()
    losses = trainer.model.calculate_loss(batch)
    (sum(losses) if isinstance(losses, tuple) else losses).backward()
    trainer.optimizer.step()


def part_epoch(root, name, args):
    """Epoch time of three set-ups, timed round-robin (a few batches of each in turn, so that the load of
    other processes hits all three alike), then full-sort evaluation throughput of each."""
    runs = [
        ("SASRec", "SASRec", {}),
        ("BLaIRCLIP prefix", "BLaIRCLIP", {"train_rows": "prefix"}),
        ("BLaIRCLIP user", "BLaIRCLIP", {"train_rows": "user"}),
    ]
    state = {}
    for label, model, extra in runs:
        config, train, test, trainer, setup_s = setup(model, name, common_config(root, args, **extra))
        trainer.model.train()
        iterator = iter(train)
        _train_step(trainer, next(iterator))  # warm-up
        state[label] = dict(train=train, test=test, trainer=trainer, iterator=iterator, seconds=0.0, timed=0,
                            setup_s=setup_s)
        print(f"{label}: set up in {setup_s:.0f} s, {len(train)} batches, {len(train._dataset.inter_feat)} rows",
              flush=True)
    per_round = max(1, args.batches // args.rounds) if args.batches else None
    for _ in range(args.rounds if args.batches else 1):
        for label, st in state.items():
            n = per_round if per_round else len(st["train"]) - 1
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(n):
                batch = next(st["iterator"], None)
                if batch is None:
                    break
                _train_step(st["trainer"], batch)
                st["timed"] += 1
            st["seconds"] += time.perf_counter() - start
            st["cpu_seconds"] = st.get("cpu_seconds", 0.0) + time.process_time() - cpu_start
    results = {}
    for label, st in state.items():
        n_batches = len(st["train"])
        epoch_s = st["seconds"] / max(st["timed"], 1) * n_batches
        epoch_cpu_s = st["cpu_seconds"] / max(st["timed"], 1) * n_batches
        ups, eval_s = (time_eval(st["trainer"], st["test"])[:2]) if not args.no_eval else (float("nan"), float("nan"))
        results[label] = dict(epoch_s=epoch_s, epoch_cpu_s=epoch_cpu_s, batches=n_batches, timed_batches=st["timed"],
                              full_epoch=st["timed"] >= n_batches - 1, eval_users_per_s=ups, eval_s=eval_s,
                              setup_s=st["setup_s"], train_rows=len(st["train"]._dataset.inter_feat))
        print(f"{label:18s} epoch {epoch_s:8.1f} s wall, {epoch_cpu_s:8.1f} s CPU (from {st['timed']} of {n_batches} batches)  "
              f"eval {ups:8.0f} users/s ({eval_s:.1f} s)", flush=True)
    s, p, u = results["SASRec"], results["BLaIRCLIP prefix"], results["BLaIRCLIP user"]
    ratios = {
        "prefix_epoch_vs_sasrec": p["epoch_s"] / s["epoch_s"],
        "user_epoch_vs_sasrec": u["epoch_s"] / s["epoch_s"],
        "user_epoch_vs_own_prefix": u["epoch_s"] / p["epoch_s"],
        "eval_throughput_vs_sasrec": u["eval_users_per_s"] / s["eval_users_per_s"],
        "cpu_prefix_epoch_vs_sasrec": p["epoch_cpu_s"] / s["epoch_cpu_s"],
        "cpu_user_epoch_vs_sasrec": u["epoch_cpu_s"] / s["epoch_cpu_s"],
        "cpu_user_epoch_vs_own_prefix": u["epoch_cpu_s"] / p["epoch_cpu_s"],
    }
    for k, v in ratios.items():
        print(f"  {k:28s} {v:.3f}", flush=True)
    return {"runs": results, "ratios": ratios}


def part_eval(root, name, args):
    """Full-sort evaluation throughput (test users / s) of SASRec and BLaIRCLIP, timed alternately."""
    trainers = {}
    for label, model in (("SASRec", "SASRec"), ("BLaIRCLIP", "BLaIRCLIP")):
        config, train, test, trainer, setup_s = setup(model, name, common_config(root, args))
        trainers[label] = (trainer, test)
    seconds = {label: [] for label in trainers}
    users = {}
    for _ in range(args.rounds):
        for label, (trainer, test) in trainers.items():
            ups, eval_s, _ = time_eval(trainer, test)
            seconds[label].append(eval_s)
            users[label] = len(test._dataset.inter_feat)
    result = {label: {"eval_seconds": secs, "users_per_s": users[label] / min(secs)} for label, secs in seconds.items()}
    result["ratio_eval_throughput_vs_sasrec"] = result["BLaIRCLIP"]["users_per_s"] / result["SASRec"]["users_per_s"]
    print(json.dumps(result), flush=True)
    return result


def part_recall(root, name, args):
    from recbole_blairclip.quick_start import run

    table = {}
    for spec in args.modes:  # "prefix", "user", "user:<rows per batch>" or "user:<rows per batch>:<learning rate>"
        mode, size, lr = (spec.split(":") + ["", ""])[:3]
        batch = int(size) if size else args.batch_size
        lr = float(lr) if lr else args.lr
        for seed in args.seeds:
            cfg = common_config(root, args, train_rows=mode, seed=seed, epochs=args.epochs, eval_step=args.epochs,
                                train_batch_size=batch,
                                stopping_step=args.epochs, learning_rate=lr,
                                output_dir=os.path.join(root, f"out-{spec.replace(':', '_')}-{seed}"))
            t0 = time.perf_counter()
            result = run("BLaIRCLIP", name, config_dict=cfg, saved=False)
            test = result["test_result"]
            table.setdefault(spec, []).append({"seed": seed, "recall@10": test["recall@10"], "ndcg@10": test["ndcg@10"],
                                               "seconds": time.perf_counter() - t0})
            print(f"{spec:9s} seed {seed}: Recall@10 {test['recall@10']:.4f}  NDCG@10 {test['ndcg@10']:.4f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = {m: {"recall@10_mean": float(np.mean([r["recall@10"] for r in rs])),
                   "recall@10_std": float(np.std([r["recall@10"] for r in rs])),
                   "ndcg@10_mean": float(np.mean([r["ndcg@10"] for r in rs]))} for m, rs in table.items()}
    for m, v in summary.items():
        print(f"  {m:7s} Recall@10 {v['recall@10_mean']:.4f} +- {v['recall@10_std']:.4f}  NDCG@10 {v['ndcg@10_mean']:.4f}")
    return {"runs": table, "summary": summary}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["epoch", "eval", "recall", "both"], default="both")
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--items", type=int, default=17000)
    parser.add_argument("--text-dim", type=int, default=768)
    parser.add_argument("--image-dim", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--eval-batch-size", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=None, help="time only the first N batches (extrapolate)")
    parser.add_argument("--no-eval", action="store_true", help="epoch part: skip the evaluation timing")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds the timed batches are split into")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the recall part")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--modes", nargs="+", default=["prefix", "user"],
                        help="recall part: train_rows modes; user:<n>[:<lr>] = user mode, n users per batch, learning rate lr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help="folder for the synthetic data (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--small", action="store_true", help="tiny smoke run (2K users, 500 items)")
    args = parser.parse_args(argv)
    if args.small:
        args.users, args.items, args.text_dim, args.image_dim = 2000, 500, 32, 32
        args.batch_size, args.epochs, args.seeds, args.batches, args.hidden = 256, 2, [0], 4, 32
    import torch

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    root = args.root or tempfile.mkdtemp(prefix="blairclip-bench-")
    t0 = time.perf_counter()
    _, stats = make_synthetic(root, "synth", args.users, args.items, seed=0, text_dim=args.text_dim,
                              image_dim=args.image_dim)
    print(f"data {stats} written in {time.perf_counter() - t0:.0f} s under {root}", flush=True)
    report = {"data": stats, "args": vars(args), "torch_threads": torch.get_num_threads()}
    if args.part in ("epoch", "both"):
        report["epoch"] = part_epoch(root, "synth", args)
    if args.part == "eval":
        report["eval"] = part_eval(root, "synth", args)
    if args.part in ("recall", "both"):
        report["recall"] = part_recall(root, "synth", args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
