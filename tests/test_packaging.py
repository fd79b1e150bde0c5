"""Packaging: the package list in pyproject.toml, the bundled sample and configs shipped in the package and
found from any folder (editable install or wheel), an explicit data_path still winning."""
import filecmp
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT

PYPROJECT = os.path.join(ROOT, "pyproject.toml")


def _pyproject():
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def test_every_package_in_the_tree_is_listed():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    in_tree = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "recbole_blairclip")):
        if "__init__.py" in files and "__pycache__" not in folder:
            in_tree.add(os.path.relpath(folder, ROOT).replace(os.sep, "."))
    mapped = set(_pyproject()["tool"]["setuptools"]["package-dir"])
    assert listed == in_tree | mapped
    assert all(os.path.isdir(os.path.join(ROOT, d)) for d in _pyproject()["tool"]["setuptools"]["package-dir"].values())


def test_uv_overrides_lift_recbole_ray_pin_and_leave_torch_to_the_machine():
    overrides = _pyproject()["tool"]["uv"]["override-dependencies"]
    assert any(o.startswith("ray[") and ">=2.40" in o for o in overrides)
    with open(os.path.join(ROOT, "uv.lock"), encoding="utf-8") as f:
        lock = f.read()
    assert '\nname = "ray"\nversion = "2.' in lock and '\nname = "torch"\n' not in lock
    assert '\nname = "recbole"\nversion = "1.2.1"' in lock


def test_sample_and_configs_resolve_from_any_folder(tmp_path, monkeypatch):
    from recbole_blairclip.packaged import resolve_config_file, sample_dataset_dir
    from recbole_blairclip.quick_start import make_config

    monkeypatch.chdir(tmp_path)  # no dataset_atomic/ or configs/ here
    folder = sample_dataset_dir("appliances-sample")
    assert folder is not None and filecmp.cmp(
        os.path.join(folder, "appliances-sample.test.inter"),
        os.path.join(ROOT, "dataset_atomic", "appliances-sample", "appliances-sample.test.inter"), shallow=False)
    config = make_config("BPR", "appliances-sample", None, {"output_dir": str(tmp_path / "out")})
    assert os.path.samefile(config["data_path"], folder)

    path = resolve_config_file("configs/benchmark_sample.yaml")
    assert os.path.isabs(path) and filecmp.cmp(path, os.path.join(ROOT, "configs", "benchmark_sample.yaml"), shallow=False)
    assert resolve_config_file("configs/nope.yaml") == "configs/nope.yaml"  # still reported missing by its name

    # an explicit data_path wins, even where it holds no such dataset
    mine = tmp_path / "mine"
    mine.mkdir()
    config = make_config("BPR", "appliances-sample", None, {"output_dir": str(tmp_path / "out"), "data_path": str(mine)})
    assert config["data_path"] == os.path.join(str(mine), "appliances-sample")


def test_wheel_carries_sample_configs_and_yaml(tmp_path):
    """The PEP 517 backend builds the wheel (what pip / uv run for a non-editable install)."""
    pytest.importorskip("setuptools")
    script = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    sample = "recbole_blairclip/sample_data/appliances-sample/appliances-sample"
    for suffix in (".inter", ".train.inter", ".valid.inter", ".test.inter", ".item", ".features.json"):
        assert sample + suffix in names
    assert "recbole_blairclip/configs/benchmark_sample.yaml" in names
    assert "recbole_blairclip/configs/tune/BPR.yaml" in names
    configs = os.path.join(ROOT, "configs")
    shipped = {f"recbole_blairclip/configs/{os.path.relpath(os.path.join(d, f), configs)}".replace(os.sep, "/")
               for d, _, files in os.walk(configs) for f in files if f.endswith(".yaml")}
    assert shipped <= names, sorted(shipped - names)  # every run config, benchmark, space and tuned config
    assert "recbole_blairclip/properties/overall.yaml" in names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
