"""What ships inside the package besides code: the bundled sample dataset and the run configs.

In the repository they live in ``dataset_atomic/`` and ``configs/`` (their home); ``pyproject.toml`` maps those
folders into the package as ``recbole_blairclip.sample_data`` and ``recbole_blairclip.configs``, so that an
editable install and a wheel both carry them. This module finds them:

* :func:`resolve_dataset_root`: ``<data_path>/<dataset>`` when that folder exists (an explicit ``data_path``
  always wins), else the packaged sample of that name, from whatever folder the command runs in;
* :func:`resolve_config_file`: a config path that does not exist, but names a file of the repository's
  ``configs/`` folder (``configs/benchmark_sample.yaml``), is read from the packaged copy.
"""
import importlib.util
import os

SAMPLE_PACKAGE = "recbole_blairclip.sample_data"
CONFIGS_PACKAGE = "recbole_blairclip.configs"


def _package_dirs(package):
    """The folders of a data package (a namespace package: it has no ``__init__.py``)."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [os.fspath(p) for p in spec.submodule_search_locations]


def sample_dataset_dir(name):
    """The packaged folder of sample dataset ``name`` (holding ``<name>.inter``), or None."""
    for folder in _package_dirs(SAMPLE_PACKAGE):
        candidate = os.path.join(folder, name)
        if os.path.isfile(os.path.join(candidate, f"{name}.inter")):
            return candidate
    return None


def sample_names():
    """Names of the packaged sample datasets."""
    names = set()
    for folder in _package_dirs(SAMPLE_PACKAGE):
        for entry in os.listdir(folder):
            if os.path.isfile(os.path.join(folder, entry, f"{entry}.inter")):
                names.add(entry)
    return sorted(names)


def resolve_dataset_root(data_path, dataset, explicit=False):
    """The ``data_path`` to use for ``dataset``: the given one when ``<data_path>/<dataset>`` exists or the
    user set it (``explicit``), else the parent of the packaged sample of that name, else the given one."""
    if explicit or os.path.isdir(os.path.join(data_path, dataset)):
        return data_path
    sample = sample_dataset_dir(dataset)
    return os.path.dirname(sample) if sample is not None else data_path


def resolve_config_file(path):
    """``path`` when it exists; else, for a path such as ``configs/x.yaml`` (the repository's configs folder,
    relative), the packaged copy when there is one; else ``path`` unchanged (the caller reports it missing)."""
    path = os.fspath(path)
    if os.path.exists(path) or os.path.isabs(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) >= 2 and parts[0] == "configs":
        for folder in _package_dirs(CONFIGS_PACKAGE):
            candidate = os.path.join(folder, *parts[1:])
            if os.path.isfile(candidate):
                return candidate
    return path


__all__ = ["sample_dataset_dir", "sample_names", "resolve_dataset_root", "resolve_config_file"]
