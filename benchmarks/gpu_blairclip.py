"""One prepared GPU check for BLaIRCLIP on a synthetic catalogue of Appliances' size (94K items).

Writes the dataset (atomic files + random topic-structured text/image features), then trains one epoch
of BLaIRCLIP (frozen text, default one-row-per-user mode) and of RecBole's SASRec (same hidden size,
layers, max length), evaluates both with full-sort ranking over all items, and prints one JSON line with
epoch seconds, evaluation users/s, peak GPU memory and the ratios. Sized to finish in < 5 minutes on one
GPU; ``--small`` is a CPU-sized smoke run of the same code path.

    python benchmarks/gpu_blairclip.py              # on the GPU machine (see gpu_blairclip.sh)
    python benchmarks/gpu_blairclip.py --small --device cpu
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from blairclip_speed import common_config, make_synthetic, setup, time_epoch, time_eval  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=60000)
    parser.add_argument("--items", type=int, default=94000)
    parser.add_argument("--text-dim", type=int, default=768)
    parser.add_argument("--image-dim", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--eval-batch-size", type=int, default=2048)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-sasrec", action="store_true", help="skip the SASRec comparison")
    parser.add_argument("--root", default=None)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--small", action="store_true", help="2K users, 3K items: a CPU smoke run")
    args = parser.parse_args(argv)
    if args.small:
        args.users, args.items, args.text_dim, args.image_dim, args.batch_size = 2000, 3000, 32, 32, 256
    args.seed, args.batches = 0, None
    import torch

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device visible; run with --small --device cpu for the smoke run", file=sys.stderr)
        return 2
    root = args.root or tempfile.mkdtemp(prefix="blairclip-gpu-")
    t0 = time.perf_counter()
    _, stats = make_synthetic(root, "synth", args.users, args.items, text_dim=args.text_dim, image_dim=args.image_dim)
    report = {"data": stats, "data_seconds": time.perf_counter() - t0, "device": args.device,
              "gpu": torch.cuda.get_device_name() if cuda else None}
    print(f"data written in {report['data_seconds']:.0f} s: {stats}", flush=True)
    runs = [("BLaIRCLIP", {})] + ([] if args.no_sasrec else [("SASRec", {})])
    for model, extra in runs:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        cfg = common_config(root, args, **extra)
        config, train, test, trainer, setup_s = setup(model, "synth", cfg)
        epoch_s, n_batches, _ = time_epoch(trainer, train)
        ups, eval_s, metrics = time_eval(trainer, test)
        report[model] = {
            "epoch_seconds": round(epoch_s, 2), "train_batches": n_batches,
            "train_rows": len(train._dataset.inter_feat), "eval_users_per_s": round(ups, 1),
            "eval_seconds": round(eval_s, 2), "setup_seconds": round(setup_s, 1),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            "recall@10": metrics.get("recall@10"),
        }
        print(model, json.dumps(report[model]), flush=True)
        del trainer, train, test
    if "SASRec" in report:
        report["ratios"] = {
            "epoch_vs_sasrec": report["BLaIRCLIP"]["epoch_seconds"] / report["SASRec"]["epoch_seconds"],
            "eval_throughput_vs_sasrec": report["BLaIRCLIP"]["eval_users_per_s"] / report["SASRec"]["eval_users_per_s"],
        }
    print(json.dumps(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
