"""Readable YAML search spaces for Ray Tune, checked before any trial starts.

A space file maps RecBole config keys to one distribution each::

    learning_rate:
      loguniform: [1.0e-4, 1.0e-2]   # a float whose log is uniform in [low, high] (low > 0)
    embedding_size:
      choice: [32, 64, 128]          # one of the values, uniformly at random
    n_layers:
      randint: [1, 3]                # an integer in [low, high], BOTH ends included
    hidden_dropout_prob:
      uniform: [0.1, 0.5]            # a float uniformly in [low, high]
    loss_type:
      grid: [CE, BPR]                # every value: each sample runs the whole grid (Ray's grid_search)

:func:`load_space` checks the shape of the file (one known distribution per key, well-formed bounds);
:func:`check_space` checks it against a model's configuration (every key is a config key RecBole or
the plugin's packaged yaml knows for that model, values of the key's type, nothing that changes what is
measured or where files go). Both raise :class:`~recbole_blairclip.errors.ConfigError` naming the file,
line and key. :func:`to_param_space` turns a checked space into Ray Tune sample objects.
"""
import math
import os
from dataclasses import dataclass

import yaml

from recbole_blairclip.config import SafeConfigLoader, load_yaml
from recbole_blairclip.errors import ConfigError

KINDS = ("choice", "grid", "uniform", "loguniform", "randint")

# keys a search must not vary: they change what is measured, which data is read or where files go
FORBIDDEN = {
    "model": "the model is fixed by --model",
    "dataset": "the dataset is fixed by --dataset",
    "data_path": "every trial reads the same data",
    "benchmark_filename": "every trial reads the same split",
    "output_dir": "each trial writes under its own folder",
    "checkpoint_dir": "each trial writes under its own folder",
    "valid_metric": "trials are compared on one validation metric",
    "valid_metric_bigger": "trials are compared on one validation metric",
    "metrics": "trials are compared on the same metrics",
    "topk": "trials are compared on the same metrics",
    "eval_args": "trials are evaluated with the same protocol",
    "gpu_id": "the search assigns devices (--gpus-per-trial)",
    "use_gpu": "the search assigns devices (--gpus-per-trial)",
    "nproc": "a trial is one process",
}


@dataclass(frozen=True)
class Param:
    """One searched key: ``kind`` is one of :data:`KINDS`; ``values`` the list or the (low, high) bounds."""

    name: str
    kind: str
    values: tuple
    line: int = None  # 1-based line of the key in its file, when known

    def to_ray(self):
        """The Ray Tune sample object for this parameter."""
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "grid":
            return tune.grid_search(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        low, high = self.values
        return tune.randint(low, high + 1)  # Ray's upper bound is exclusive; ours is inclusive

    def candidates(self):
        """The finite set of values for choice / grid, else None."""
        return list(self.values) if self.kind in ("choice", "grid") else None

    def to_yaml(self):
        return {self.kind: list(self.values)}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _where(source, param_or_line):
    line = param_or_line.line if isinstance(param_or_line, Param) else param_or_line
    return f"{source}" + (f" line {line}" if line else "")


def _key_lines(path):
    """Top-level key -> 1-based line number (best effort; {} when the file cannot be composed)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            node = yaml.compose(f, Loader=SafeConfigLoader)
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _parse_param(name, spec, source, line):
    where = _where(source, line)
    example = "e.g. `learning_rate: {loguniform: [1.0e-4, 1.0e-2]}` or `embedding_size: {choice: [32, 64]}`"
    if not isinstance(name, str):
        raise ConfigError(f"{where}: parameter name {name!r} must be a string (a RecBole config key)")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(
            f"{where}: {name!r} must map to exactly one of {', '.join(KINDS)}, got {spec!r}; {example}. "
            "Fixed values belong in a --config_files yaml, not in the search space."
        )
    kind, values = next(iter(spec.items()))
    if kind not in KINDS:
        raise ConfigError(f"{where}: {name!r} uses unknown distribution {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(values, list):
        raise ConfigError(f"{where}: {name}.{kind} must be a list, got {values!r}")
    if kind in ("choice", "grid"):
        if not values:
            raise ConfigError(f"{where}: {name}.{kind} is empty; give at least one value")
        return Param(name, kind, tuple(values), line)
    if len(values) != 2:
        raise ConfigError(f"{where}: {name}.{kind} needs [low, high], got {values!r}")
    low, high = values
    if kind == "randint":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{where}: {name}.randint bounds must be integers, got {values!r}")
        if low > high:
            raise ConfigError(f"{where}: {name}.randint needs low <= high, got {values!r}")
        return Param(name, kind, (low, high), line)
    if not all(_is_number(v) and math.isfinite(v) for v in values):
        raise ConfigError(f"{where}: {name}.{kind} bounds must be finite numbers, got {values!r}")
    if not low < high:
        raise ConfigError(f"{where}: {name}.{kind} needs low < high, got {values!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: {name}.loguniform needs low > 0 (log scale), got {values!r}")
    return Param(name, kind, (float(low), float(high)), line)


def parse_space(data, source="<space>", lines=None):
    """Check the shape of a space mapping; returns {name: Param} in file order."""
    lines = lines or {}
    if data is None or data == {}:
        raise ConfigError(f"{source}: the search space is empty; give at least one key, e.g. "
                          "`learning_rate: {loguniform: [1.0e-4, 1.0e-2]}`")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a search space must be a mapping of config key -> distribution, "
                          f"got {type(data).__name__}")
    return {name: _parse_param(name, spec, source, lines.get(name)) for name, spec in data.items()}


def load_space(path):
    """Read and shape-check a space yaml file; returns {name: Param}."""
    path = os.fspath(path)
    return parse_space(load_yaml(path), source=path, lines=_key_lines(path))


def known_keys(config):
    """Config keys this model knows: RecBole's argument lists plus every internal (packaged) yaml key."""
    keys = set(config.internal_config_dict)
    for names in config.parameters.values():
        keys.update(names)
    return keys


def _type_problem(param, default):
    """A message when the space's values cannot be of the default value's type, else None."""
    if default is None or isinstance(default, (list, dict, tuple)):
        return None
    values = param.candidates()
    if isinstance(default, bool):
        if values is None or not all(isinstance(v, bool) for v in values):
            return "is true/false: use choice or grid of true/false"
    elif isinstance(default, int):
        if param.kind in ("uniform", "loguniform"):
            return f"is an integer (default {default}): use randint, choice or grid"
        if values is not None and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return f"is an integer (default {default}): every value must be an integer"
    elif isinstance(default, float):
        if values is not None and not all(_is_number(v) for v in values):
            return f"is a number (default {default}): every value must be a number"
    elif isinstance(default, str):
        if values is None or not all(isinstance(v, str) for v in values):
            return f"is a string (default {default!r}): use choice or grid of strings"
    return None


def check_space(space, config, source="<space>"):
    """Check a parsed space against a model's Config (see module doc); raises ConfigError."""
    known = known_keys(config)
    model = config["model"]
    for param in space.values():
        where = _where(source, param)
        if param.name in FORBIDDEN:
            raise ConfigError(f"{where}: {param.name!r} cannot be searched ({FORBIDDEN[param.name]})")
        if param.name not in known:
            import difflib

            close = difflib.get_close_matches(param.name, sorted(known), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"{where}: unknown parameter {param.name!r} for model {model}.{hint} "
                f"Use a key of RecBole's config or of {model}'s default yaml."
            )
        problem = _type_problem(param, config.final_config_dict.get(param.name))
        if problem:
            raise ConfigError(f"{where}: {param.name!r} {problem}, got {param.to_yaml()}")


def is_grid_only(space):
    return all(p.kind == "grid" for p in space.values())


def grid_size(space):
    size = 1
    for p in space.values():
        if p.kind == "grid":
            size *= len(p.values)
    return size


def to_param_space(space):
    """{name: Ray Tune sample object} for ``Tuner(param_space=...)``."""
    return {name: param.to_ray() for name, param in space.items()}


def space_to_yaml(space):
    """The space as plain data (as read), for the search record."""
    return {name: param.to_yaml() for name, param in space.items()}


__all__ = [
    "KINDS",
    "FORBIDDEN",
    "Param",
    "parse_space",
    "load_space",
    "known_keys",
    "check_space",
    "is_grid_only",
    "grid_size",
    "to_param_space",
    "space_to_yaml",
]
