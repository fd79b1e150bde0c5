"""Row planning: every row of the table resolved to its base model and merged config (:func:`plan_rows`),
and the identity of one run (:func:`spec_hash`).

A *row* is a model name (``BPR``, ``SASRec``, ``TFIDF``, ``BLaIRCLIP``, any RecBole model) or a *variant*:
a row name mapped to a base model plus overrides in the benchmark yaml, e.g.
``BLaIRCLIP-text: {model: BLaIRCLIP, use_image: false}``.

Config of one row, lowest priority first: the plugin's packaged defaults; the shared config files and keys
(in the order given); ``<model_config_dir>/<Model>.yaml``; ``model_config[<Model>]``; ``model_config[<row>]``
and the variant's overrides; ``config_dict`` (the CLI's ``--set KEY=VALUE``); then the run's ``seed`` and
``output_dir`` (set by the runner).
"""
import hashlib
import json
import os
import re

from recbole_blairclip import registry
from recbole_blairclip.config import load_yaml
from recbole_blairclip.errors import ConfigError

RUN_DEFAULTS = {"show_progress": False}  # RecBole's tqdm bars would only fill worker.log


def row_folder(row):
    """A file-system safe folder name for a row (never ``.``/``..`` or hidden)."""
    folder = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(row))
    return "_" + folder if folder.startswith(".") or not folder else folder


def plugin_targets():
    """The registry's plugin models in a form a fresh process can import."""
    targets = {}
    for name, target in registry.PLUGIN_MODELS.items():
        if isinstance(target, str):
            targets[name] = target
        elif getattr(target, "__module__", "__main__") != "__main__":
            targets[name] = f"{target.__module__}:{target.__qualname__}"
    return targets


def check_model(name, row):
    """Fail early on a misspelt model name; any other import problem is the run's own failure."""
    try:
        registry.get_model(name)
    except ConfigError as exc:
        raise ConfigError(f"row {row!r}: {exc}") from None
    except Exception:  # noqa: BLE001 - a broken model module fails its own runs, recorded in the table
        pass


def _tuned_files(config_dir, model):
    """``<dir>/<Model>.yaml`` or ``<dir>/<Model>/best_config.yaml`` (``blairclip tune --out <dir>/<Model>``)."""
    if not config_dir:
        return []
    for path in (os.path.join(config_dir, f"{model}.yaml"), os.path.join(config_dir, model, "best_config.yaml")):
        if os.path.isfile(path):
            return [path]
    return []


class RowPlan:
    """How one row of the table is run: base model and its merged config (without seed/output_dir)."""

    def __init__(self, row, model, config, sources):
        self.row, self.model, self.config, self.sources = row, model, config, sources


def plan_rows(rows, bench, config_dict=None):
    """Resolve every row name to a :class:`RowPlan` (see the module doc for the priority order)."""
    plans = []
    variants, model_config = bench.get("variants", {}), bench.get("model_config", {})
    config_dir = bench.get("model_config_dir")
    for row in rows:
        variant = dict(variants.get(row, {}))
        model = str(variant.pop("model", row))
        if model in variants and model != row:
            raise ConfigError(f"variant {row!r}: its model {model!r} is itself a variant; name a model")
        config, sources = dict(RUN_DEFAULTS), []
        config.update(bench.shared)
        for path in _tuned_files(config_dir, model):
            config.update(load_yaml(path))
            sources.append(os.path.abspath(path))
        layers = [model_config.get(model, {})]
        if row != model:
            layers.append(model_config.get(row, {}))
        layers.append(variant)
        for layer in layers:
            layer = dict(layer)
            for path in layer.pop("config_files", None) or []:
                config.update(load_yaml(path))
                sources.append(path)
            config.update(layer)
        config.update(config_dict or {})
        plans.append(RowPlan(row, model, config, sources))
    return plans


def spec_hash(spec):
    """Identity of a run: model, dataset, seed and config (a re-run with the same hash is skipped)."""
    key = {k: spec[k] for k in ("model", "dataset", "seed", "config")}
    key["plugin"] = spec.get("plugin_models", {}).get(spec["model"])
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_spec(plan, seed, dataset, folder, config_sources, plugin_models, keep_checkpoints):
    """The spec of one (row, seed) run in ``folder``, as the worker reads it from ``spec.json``."""
    spec = {
        "row": plan.row,
        "model": plan.model,
        "dataset": dataset,
        "seed": seed,
        "config": dict(plan.config, seed=seed, output_dir=folder, ranks_file=os.path.join(folder, "ranks.parquet")),
        "config_sources": config_sources + plan.sources,
        "plugin_models": plugin_models,
        "keep_checkpoints": keep_checkpoints,
        "run_dir": folder,
        "result_path": os.path.join(folder, "result.json"),
        "worker_log": os.path.join(folder, "worker.log"),
    }
    spec["spec_hash"] = spec_hash(spec)
    return spec
