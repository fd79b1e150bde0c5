"""Fixes RecBole 1.2.1 needs on today's Python stack; imported first by ``recbole_blairclip``.

The project installs a measured working set (see README, "Why these pins"): numpy 2 with the aliases below,
pandas < 3, setuptools < 81 (ray 2.6.3, the plain-pip path, imports ``pkg_resources``), current Ray under uv.
This module

* fails early, with the fix, when pandas >= 3 is installed (it silently breaks RecBole's ``token_seq``
  fields) or ``pkg_resources`` is missing (ray 2.6.3, imported by ``recbole.quick_start``, needs it);
* re-creates the numpy aliases RecBole and ray 2.6.3 still use (``np.float_``, ``np.complex_``,
  ``np.unicode_``, ``np.bool8``) when numpy >= 2 is present (with numpy < 2 it does nothing); Ray workers
  run it first through ``runtime_env={"worker_process_setup_hook": WORKER_SETUP_HOOK}``;
* :func:`require_ray` stops a feature that needs current Ray (>= 2.40) with a one-line fix when the Ray
  2.6.3 of RecBole's own pin is installed;
* restores ``scipy.sparse.dok_matrix._update`` (removed in recent scipy), which RecBole's graph models
  (LightGCN, NGCF, GCMC, NCL, SpectralCF, KGIN, MCCLK) call to build their adjacency matrix: at once when
  scipy.sparse is already imported, else by an import hook the moment it is first imported (so commands
  that never use scipy do not import it);
* loads RecBole checkpoints, which pickle their ``Config``: torch >= 2.6 refuses them with the default
  ``weights_only=True``. :func:`load_recbole_checkpoint` is the only place in the project that passes
  ``weights_only=False``. Load only checkpoints you trust (your own runs): unpickling runs code.
"""
import importlib.abc
import importlib.util
import sys

import numpy as np

from recbole_blairclip.errors import BlairclipError

WORKER_SETUP_HOOK = "recbole_blairclip.compat.apply"  # Ray's worker_process_setup_hook (an import path)
MIN_RAY = (2, 40)
_NUMPY_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_", "bool8": "bool_"}


def _dok_update(self, data):
    """Bulk insert {(row, col): value} without per-item checks, as scipy's old private method did."""
    self._dict.update(data)


def _patch_scipy_sparse(sp):
    """Give ``sp.dok_matrix`` its old ``_update`` when this scipy lacks it."""
    if not hasattr(sp.dok_matrix, "_update") and hasattr(sp.dok_matrix((1, 1)), "_dict"):
        sp.dok_matrix._update = _dok_update


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies :func:`_patch_scipy_sparse` right after ``scipy.sparse`` is first imported, so commands that
    never touch scipy (``blairclip convert``) do not pay for importing it (0.3-1.4 s)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "scipy.sparse":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch_scipy_sparse(module)

        loader.exec_module = exec_and_patch
        return spec


def _patch_scipy_when_imported():
    """Patch scipy.sparse now when it is already imported, else as soon as it is (once per process)."""
    module = sys.modules.get("scipy.sparse")
    if module is not None:
        _patch_scipy_sparse(module)
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def _installed_version(package):
    """The installed version string of ``package`` (from its metadata, without importing it), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _major(version_string):
    digits = version_string.split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _ray_needs_pkg_resources():
    """ray < 2.7 (RecBole's pin) imports pkg_resources; current Ray does not."""
    found = _installed_version("ray")
    try:
        major, minor = (int(p) for p in (found or "").split(".")[:2])
    except ValueError:  # not installed, or an odd version string
        return False
    return (major, minor) < (2, 7)


def apply():
    """Make RecBole 1.2.1 and ray 2.6.3 importable on this interpreter (idempotent)."""
    for alias, target in _NUMPY_ALIASES.items():
        if not hasattr(np, alias):
            setattr(np, alias, getattr(np, target))
    _patch_scipy_when_imported()
    found = _installed_version("pandas")  # read from the metadata: importing pandas costs ~1.4 s per command
    if found is not None and _major(found) >= 3:
        raise ImportError(
            f"recbole-blairclip needs pandas < 3 (found {found}): pandas 3 breaks RecBole's "
            "token_seq fields. Run: pip install 'pandas<3'"
        )
    if importlib.util.find_spec("pkg_resources") is None and _ray_needs_pkg_resources():
        raise ImportError(
            "ray 2.6.3 (required by RecBole 1.2.1) imports pkg_resources, removed in setuptools >= 81. "
            "Run: pip install 'setuptools<81'"
        )


class RayVersionError(BlairclipError, ImportError):
    """Ray is missing or older than :data:`MIN_RAY` (the CLI prints its one line with the fix)."""


def require_ray(feature):
    """Return the ray module when it is >= 2.40; else raise :class:`RayVersionError` saying how to get it."""
    fix = ("install with uv as the README says (`uv sync --locked` lifts RecBole's ray<=2.6.3 pin), or on "
           "Python 3.11 with pip: pip install 'ray[tune,data]>=2.40' (pip then warns about RecBole's pin; that is expected)")
    try:
        import ray
    except ImportError:
        raise RayVersionError(f"{feature} needs Ray >= 2.40, which is not installed: {fix}") from None
    version = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_RAY:
        raise RayVersionError(f"{feature} needs Ray >= 2.40 (found ray {ray.__version__}, from RecBole 1.2.1's "
                              f"pin): {fix}")
    return ray


def load_recbole_checkpoint(path, map_location="cpu"):
    """Load a RecBole checkpoint (a dict with ``config``, ``state_dict``, ``other_parameter``, ...).

    RecBole pickles its Config into every checkpoint, so this needs ``weights_only=False``: it can run
    arbitrary code from the file. Only load checkpoints you produced or otherwise trust.
    """
    import torch

    return torch.load(path, map_location=map_location, weights_only=False)
