"""Packaged defaults vs a run config: test NDCG@10 of each model, one process per run (issue 17, item 2).

    python benchmarks/defaults_check.py --dataset appliances-sample --models BPR,SASRec,BLaIRCLIP \
        [--config_files configs/sample.yaml] [--set train_batch_size=128 --set learning_rate=0.003] [--tag NAME]

Each run is ``run_recbole --json`` in its own process (so one model's state never leaks into the next); one
JSON line per run is printed: tag, model, overrides, test/valid NDCG@10, Recall@10, best epoch, epochs, seconds.
A row name ``BLaIRCLIP-text`` / ``BLaIRCLIP-id`` adds ``use_image=False`` / ``use_item_id=True``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = {"BLaIRCLIP-text": ("BLaIRCLIP", ["--use_image=False"]),
            "BLaIRCLIP-id": ("BLaIRCLIP", ["--use_item_id=True"])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="appliances-sample")
    parser.add_argument("--models", default="TFIDF,BPR,SASRec,BLaIRCLIP-text,BLaIRCLIP")
    parser.add_argument("--config_files", default=None)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override (repeatable)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--output_dir", default="/tmp/defaults_check")
    args = parser.parse_args()
    exe = os.path.join(os.path.dirname(sys.executable), "run_recbole")
    for row in args.models.split(","):
        model, extra = VARIANTS.get(row, (row, []))
        cmd = [exe, f"--model={model}", f"--dataset={args.dataset}", "--json", f"--output_dir={args.output_dir}"]
        cmd += extra + [f"--{kv}" for kv in args.set]
        if args.config_files:
            cmd.append(f"--config_files={args.config_files}")
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        line = {"tag": args.tag, "model": row, "config_files": args.config_files, "set": args.set,
                "seconds": round(seconds, 1)}
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            line.update(test_ndcg10=result["test_result"]["ndcg@10"], test_recall10=result["test_result"]["recall@10"],
                        valid_ndcg10=result["best_valid_result"]["ndcg@10"], best_epoch=result["best_epoch"],
                        epochs=result["epochs"])
        except (IndexError, ValueError, KeyError):
            line["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
