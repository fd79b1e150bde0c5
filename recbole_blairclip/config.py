"""RecBole ``Config`` subclass: plugin model lookup and the plugin's packaged defaults.

Priority, lowest first (RecBole's own rule, extended):

1. RecBole's internal yaml (overall, ``properties/model/<Model>.yaml``, dataset, quick-start by type);
2. this package's ``properties/overall.yaml`` (the benchmark protocol), then ``properties/general.yaml`` or
   ``properties/sequential.yaml`` (which files and columns each model type reads), then
   ``properties/model/<Model>.yaml`` for plugin models;
3. config files < ``config_dict`` < ``--key=value`` on the command line (RecBole's external priority).

The command line is an explicit argument (``cmd_args``, a list such as ``["--epochs=5"]``): unlike RecBole's
Config this one never reads ``sys.argv``, so no caller has to rewrite it.

Config files are parsed with a *safe* YAML loader; a broken file raises a
:class:`~recbole_blairclip.errors.ConfigError` naming the file and line. String values of ``config_dict``
and ``--key=value`` are read with :func:`literal_value` (Python literals only), never with RecBole's
``eval``; the final values are then checked by :mod:`recbole_blairclip.config_checks`.
"""
import ast
import importlib.resources
import os
import re

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

from recbole_blairclip import registry
from recbole_blairclip.config_checks import check_config
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.packaged import resolve_config_file, resolve_dataset_root

_PROPERTIES = importlib.resources.files("recbole_blairclip") / "properties"

# RecBole's float resolver (accepts 1e-3, .5, ...), added to a SafeLoader instead of its FullLoader
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SafeConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader with RecBole's float syntax; never constructs Python objects."""


SafeConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def load_yaml(path):
    """Read one yaml file safely; errors name the file and line."""
    path = resolve_config_file(os.fspath(path))  # configs/x.yaml from any folder: the packaged copy
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.load(f, Loader=SafeConfigLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"broken yaml in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value, got {type(data).__name__}")
    return data


_LITERAL_TYPES = (str, int, float, bool, list, tuple, dict)


def literal_value(text):
    """A config string as RecBole means it (``"64"`` -> 64, ``"[10, 50]"``, ``"True"``/``"true"``, ``"None"``),
    parsed with :func:`ast.literal_eval`: numbers, booleans, None, strings, lists, tuples and dicts only.
    Anything else (a name, a call, an expression) stays the plain string it was; nothing is ever run."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        return {"true": True, "false": False}.get(lowered, text)
    if value is not None and not isinstance(value, _LITERAL_TYPES):
        return text  # complex numbers, sets, bytes: not config values
    return value


def packaged_yaml(relative):
    """Path of a packaged default yaml, or None when the package has none of that name."""
    resource = _PROPERTIES.joinpath(*relative.split("/"))
    return os.fspath(resource) if resource.is_file() else None


class Config(RecBoleConfig):
    """RecBole's Config that knows the plugin's models and packaged defaults (see module doc)."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = list(cmd_args or ())
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    def _load_cmd_line(self):
        """``--key=value`` pairs of ``cmd_args`` (RecBole reads sys.argv here); other arguments are the
        caller's own (``--model X``, ``--nproc 2``) and ignored."""
        cmd = {}
        for arg in self._cmd_args:
            if not arg.startswith("--") or "=" not in arg:
                continue
            name, value = arg[2:].split("=", 1)
            if name in cmd and cmd[name] != value:
                raise ConfigError(f"--{name} is given twice with different values ({cmd[name]!r}, {value!r})")
            cmd[name] = value
        return self._convert_config_dict(cmd)

    def _build_yaml_loader(self):
        return SafeConfigLoader

    def _convert_config_dict(self, config_dict):
        """RecBole's converter, without its ``eval``: string values go through :func:`literal_value`."""
        for key, value in config_dict.items():
            if isinstance(value, str):
                config_dict[key] = literal_value(value)
        return config_dict

    def _load_config_files(self, file_list):
        merged = {}
        for file in file_list or []:
            merged.update(load_yaml(file))
        return merged

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("no model given: pass --model=NAME (see `blairclip models`)")
        if dataset is None and "dataset" not in self.external_config_dict:
            raise ConfigError("no dataset given: pass --dataset=NAME (a folder under data_path)")
        return super()._get_model_and_dataset(registry.get_model(model), dataset)

    def _update_internal_config_dict(self, file):
        config_dict = load_yaml(file)
        self.internal_config_dict.update(config_dict)
        return config_dict

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        is_sequential = model_class.type == ModelType.SEQUENTIAL
        for relative in (
            "overall.yaml",
            "sequential.yaml" if is_sequential else "general.yaml",
            f"model/{model}.yaml",
        ):
            path = packaged_yaml(relative)
            if path is not None:
                self._update_internal_config_dict(path)

    def _set_default_parameters(self):
        final = self.final_config_dict
        check_config(final, self.model)
        # sequential models: CE needs no negatives, BPR needs one, unless the user said otherwise
        if final["MODEL_TYPE"] == ModelType.SEQUENTIAL and "train_neg_sample_args" not in self.external_config_dict:
            if final.get("loss_type") == "CE":
                final["train_neg_sample_args"] = None
            elif final.get("loss_type") == "BPR" and final.get("train_neg_sample_args") is None:
                final["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}
        # RecBole's value metric AUC cannot run in full-sort mode; its ranking metric GAUC over the full
        # ranking is the per-user AUC, which the shared evaluation reports as `auc`
        metrics = final.get("metrics")
        if isinstance(metrics, (list, str)):
            metrics = [metrics] if isinstance(metrics, str) else metrics
            final["metrics"] = list(dict.fromkeys("GAUC" if str(m).upper() == "AUC" else m for m in metrics))
        # the bundled sample resolves by name from any folder; an explicit data_path always wins
        final["data_path"] = resolve_dataset_root(final["data_path"], self.dataset,
                                                  explicit="data_path" in self.external_config_dict)
        output_dir = final.get("output_dir") or "outputs"
        if "checkpoint_dir" not in self.external_config_dict:
            final["checkpoint_dir"] = os.path.join(output_dir, "saved")
        super()._set_default_parameters()
