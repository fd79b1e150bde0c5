"""The benchmark yaml: :class:`BenchmarkConfig` splits it into the benchmark's own keys and the shared run config.

Benchmark yaml (``configs/benchmark_sample.yaml``): a RecBole config file that may also hold these keys,
which the runner takes out (everything else is a shared config override for every row)::

    dataset: appliances-sample          # dataset when --dataset is not given
    models: [TFIDF, BPR, SASRec]        # rows in table order when --models is not given
    seeds: 3                            # a count (seed, seed+1, ...) or a list of seeds
    config_files: [sample.yaml]         # run config files, relative to this yaml's folder
    model_config_dir: tuned/            # optional: <dir>/<Model>.yaml or <dir>/<Model>/best_config.yaml
                                        # (`blairclip tune --out tuned/<Model>` writes the latter)
    model_config:                       # per model or row: extra config files and keys
      SASRec: {n_layers: 1}
    variants:                           # row name -> base model + overrides
      BLaIRCLIP-text: {model: BLaIRCLIP, use_image: false}
    reference:                          # published numbers per row, shown beside the reproduced ones
      SASRec: [{metric: ndcg@10, value: 0.2393, dataset: diginetica, protocol: "...", source: "..."}]
    timeout: 3600                       # seconds per run before it is stopped and recorded as failed
    keep_checkpoints: false             # keep each run's best checkpoint (saved/) in the run folder
"""
import os

from recbole_blairclip.benchmark.reference import parse_reference
from recbole_blairclip.config import load_yaml
from recbole_blairclip.errors import ConfigError

# keys of a benchmark yaml that describe the benchmark itself, not a RecBole run
BENCHMARK_KEYS = (
    "dataset",
    "models",
    "seeds",
    "config_files",
    "model_config_dir",
    "model_config",
    "variants",
    "timeout",
    "keep_checkpoints",
    "run_name",
    "reference",
)
DEFAULT_SEED = 2020  # RecBole's default seed; --seeds N runs DEFAULT_SEED .. DEFAULT_SEED + N - 1


def as_list(value, what, source):
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(",", " ").split() if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ConfigError(f"{source}: `{what}` must be a list or a comma-separated string, got {value!r}")


def _mapping(value, what, source):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `{what}` must be a mapping (name: {{key: value}}), got {type(value).__name__}")
    for name, entry in value.items():
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(f"{source}: `{what}.{name}` must be a mapping of config keys, got {entry!r}")
    return {str(k): dict(v or {}) for k, v in value.items()}


def _resolve(path, base_dir):
    """A config path relative to the file that names it (absolute paths and existing cwd paths as is)."""
    path = os.path.expanduser(str(path))
    if os.path.isabs(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) or not os.path.exists(path) else path


def _load_run_files(paths, base_dir, source):
    """Merge run config files (each a plain RecBole yaml) in order."""
    merged, used = {}, []
    for path in as_list(paths, "config_files", source):
        full = _resolve(path, base_dir)
        merged.update(load_yaml(full))
        used.append(os.path.abspath(full))
    return merged, used


class BenchmarkConfig:
    """The benchmark keys and shared run config read from ``--config_files`` (see module doc)."""

    def __init__(self, config_files=None):
        self.shared = {}  # shared config keys for every row, merged in file order
        self.sources = []  # every config file read (absolute paths)
        self.bench = {"model_config": {}, "variants": {}, "reference": {}}
        self.benchmark_files = []  # the files that held benchmark keys
        for path in config_files or []:
            self._add(path)

    def _add(self, path):
        path = os.path.abspath(os.path.expanduser(str(path)))
        data = load_yaml(path)
        self.sources.append(path)
        if not any(key in data for key in BENCHMARK_KEYS if key != "dataset"):
            if "dataset" in data:  # the runner passes the dataset itself
                self.bench["dataset"] = data.pop("dataset")
            self.shared.update(data)  # a plain run config
            return
        self.benchmark_files.append(path)
        base_dir = os.path.dirname(path)
        included, used = _load_run_files(data.pop("config_files", None), base_dir, path)
        self.sources.extend(used)
        self.shared.update(included)
        for key in ("dataset", "models", "seeds", "timeout", "keep_checkpoints", "run_name"):
            if key in data:
                self.bench[key] = data.pop(key)
        if "model_config_dir" in data:
            self.bench["model_config_dir"] = _resolve(data.pop("model_config_dir"), base_dir)
        for key in ("model_config", "variants"):
            for name, entry in _mapping(data.pop(key, None), key, path).items():
                if "config_files" in entry:  # per-model files resolve against this yaml's folder
                    entry["config_files"] = [
                        os.path.abspath(_resolve(p, base_dir)) for p in as_list(entry["config_files"], key, path)
                    ]
                self.bench[key].setdefault(name, {}).update(entry)
        self.bench["reference"].update(parse_reference(data.pop("reference", None), path))
        self.shared.update(data)  # what is left is a shared run config

    def get(self, key, default=None):
        return self.bench.get(key, default)


def seed_list(seeds, base_seed=DEFAULT_SEED):
    """``3`` -> [base, base+1, base+2]; a list (or "1,2,3") stays as given."""
    if seeds is None:
        return [base_seed]
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}")
        return [base_seed + i for i in range(seeds)]
    values = as_list(seeds, "seeds", "seeds") if not isinstance(seeds, (list, tuple)) else list(seeds)
    if isinstance(seeds, str) and len(values) == 1:
        return seed_list(int(values[0]), base_seed)
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}") from None
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return out
