"""Reproduction check at full size: BPR and SASRec on Amazon 2014 Toys and Games (RecBole atomic files in
../shared/data), RecBole run directly against the plugin, with the settings of configs/leaderboard/.

For each model it runs, on the same converted leave-one-out split and seed:

* ``recbole``: RecBole alone (:func:`recbole_blairclip.benchmark.recbole_direct.run_direct`);
* ``plugin_recbole_protocol``: ``recbole_blairclip.run`` with RecBole's candidates (``mask_history`` false
  for SASRec, true for BPR): must equal ``recbole``;
* ``plugin_mask_true`` / ``plugin_mask_false``: the same trained model (the previous run's checkpoint)
  evaluated again with the other ``mask_history`` value (for SASRec the plugin's own protocol, for BPR
  every item ranked). With one validation (``--eval-step 0``) the checkpoint is the last epoch's, so a
  retraining would give the same model; only the candidates differ.

Each run's result is written to ``<workdir>/<results>`` as it finishes; a rerun skips finished runs.
Torch uses one thread per process (``--threads``): on the shared 2-core machine two threads were ten times
slower than one (the same numbers either way).

    python benchmarks/leaderboard_repro.py --workdir /tmp/leaderboard-repro --epochs-bpr 10 --epochs-sasrec 1
"""
import argparse
import json
import os
import sys
import time


def evaluate_checkpoint(model, config, mask, checkpoint, out):
    """Valid and test metrics of a saved plugin checkpoint with ``mask_history=mask`` (no training)."""
    from recbole_blairclip.compat import load_recbole_checkpoint
    from recbole_blairclip.quick_start import build_model, build_trainer, init_logging, make_config, prepare

    cfg = make_config(model, "toys", config_dict=dict(config, mask_history=mask, output_dir=out))
    init_logging(cfg)
    _, train_data, valid_data, test_data = prepare(cfg)
    trainer = build_trainer(cfg, build_model(cfg, train_data))
    state = load_recbole_checkpoint(checkpoint, map_location=trainer.device)
    trainer.model.load_state_dict(state["state_dict"])
    trainer.model.load_other_parameter(state.get("other_parameter"))
    valid = trainer.evaluate(valid_data, load_best_model=False)
    test = trainer.evaluate(test_data, load_best_model=False)
    return {k: float(v) for k, v in test.items()}, {k: float(v) for k, v in valid.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toys", default=os.path.join("..", "shared", "data", "amazon2014-toys-recbole"))
    parser.add_argument("--workdir", default="/tmp/leaderboard-repro")
    parser.add_argument("--epochs-bpr", type=int, default=10)
    parser.add_argument("--epochs-sasrec", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-step", type=int, default=0,
                        help="validate every N epochs (0: once, after the last epoch; RecBole's GAUC sorts every "
                             "user's full ranking, the costliest part on a CPU)")
    parser.add_argument("--models", default="BPR,SASRec")
    parser.add_argument("--max-len", type=int, default=None, help="MAX_ITEM_LIST_LENGTH (default: the preset's 50)")
    parser.add_argument("--results", default="results.json", help="results file name in the workdir")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.getcwd())
    import recbole_blairclip
    from recbole_blairclip.benchmark.recbole_direct import protocol_config, recbole_protocol_mask, run_direct
    from recbole_blairclip.benchmark.config import BenchmarkConfig
    from recbole_blairclip.benchmark.plan import plan_rows
    from recbole_blairclip.data.recbole_atomic import convert_recbole

    work = os.path.abspath(args.workdir)
    # histories in the files must not be longer than MAX_ITEM_LIST_LENGTH: RecBole's own dataset does not cut them
    data = os.path.join(work, f"ds{args.max_len or 50}")
    if not os.path.isdir(os.path.join(data, "toys")):
        stats = convert_recbole(os.path.join(args.toys, "toys.inter"), os.path.join(args.toys, "toys.item"),
                                name="toys", out=data, max_item_list_length=args.max_len or 50)
        print(f"converted: {stats['kept']} in {stats['seconds']} s", flush=True)
    results_path = os.path.join(work, args.results)
    results = json.load(open(results_path)) if os.path.isfile(results_path) else {}
    presets = {"BPR": "configs/leaderboard/general.yaml", "SASRec": "configs/leaderboard/sequential.yaml"}
    epochs = {"BPR": args.epochs_bpr, "SASRec": args.epochs_sasrec}
    for model in args.models.split(","):
        bench = BenchmarkConfig([presets[model]])
        row = plan_rows([model], bench)[0].config
        row.pop("mask_history", None)
        if args.max_len:
            row["MAX_ITEM_LIST_LENGTH"] = args.max_len
        config = protocol_config(model, data, **dict(row, epochs=epochs[model], seed=args.seed, stopping_step=10,
                                                              eval_step=args.eval_step or epochs[model]))
        own = recbole_protocol_mask(model)
        runs = [("recbole", None), ("plugin_recbole_protocol", own), (f"plugin_mask_{str(not own).lower()}", not own)]
        for side, mask in runs:
            key = f"{model}/{side}"
            if key in results:
                print(f"{key}: finished earlier, skipped", flush=True)
                continue
            print(f"{key}: starting ({epochs[model]} epochs)", flush=True)
            t0, c0 = time.perf_counter(), time.process_time()
            out = os.path.join(work, "runs", model, side)
            if mask is None:
                r = run_direct(model, "toys", config, out)
                metrics, valid = r["test_result"], r["best_valid_result"]
            elif side != "plugin_recbole_protocol":
                checkpoint = results[f"{model}/plugin_recbole_protocol"]["checkpoint"]
                metrics, valid = evaluate_checkpoint(model, config, mask, checkpoint, out)
            else:
                r = recbole_blairclip.run(model=model, dataset="toys",
                                          config_dict=dict(config, mask_history=mask, output_dir=out))
                metrics, valid = r["test_result"], r["best_valid_result"]
                checkpoint = r["checkpoint"]
            metrics = {("auc" if k == "gauc" else k): v for k, v in metrics.items()}
            valid = {("auc" if k == "gauc" else k): v for k, v in valid.items()}
            results[key] = {"test": metrics, "valid": valid, "mask_history": mask,
                            "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                            "epochs": epochs[model], "checkpoint": checkpoint if mask is not None else None,
                            "config": {k: config[k] for k in sorted(config) if k != "data_path"}}
            tmp = results_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(results, f, indent=2, default=str)
            os.replace(tmp, results_path)
            print(f"{key}: {results[key]['wall_s']} s wall, {results[key]['cpu_s']} s CPU: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()), flush=True)
    print(json.dumps({k: v["test"] for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
