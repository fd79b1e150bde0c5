"""The bottom-layer I/O helpers: complete-or-absent writes, atomic-file headers, JSON-ready values, sha256."""
import enum
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from recbole_blairclip.io import (first_error_line, json_ready, read_atomic, read_atomic_header, replacing,
                                  sha256_file, sha256_folder, write_atomic, write_json)


def test_an_interrupted_write_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with replacing(path) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left behind


def test_write_json_and_atomic_round_trip(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1, 2.5]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2.5]}
    write_atomic(tmp_path / "d.inter", ["user_id:token", "item_id:token"], ["u1\ti1\n", "u2\n"])
    assert (tmp_path / "d.inter").read_bytes() == b"user_id:token\titem_id:token\nu1\ti1\nu2\n"
    header, rows = read_atomic(tmp_path / "d.inter")
    assert header == ["user_id:token", "item_id:token"] and rows == [["u1", "i1"], ["u2", ""]]


def test_a_malformed_header_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "d.item"
    path.write_text("item_id:token\ttitle\n1\tx\n")
    with pytest.raises(ValueError) as err:
        read_atomic_header(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "line 1" in message and "'title'" in message


def test_json_ready_and_hashes(tmp_path):
    got = json_ready({"a": np.int64(3), "b": (np.float32(0.5), float("nan"), np.float64("-inf")), 1: {2},
                      "e": enum.Enum("ModelType", "GENERAL SEQUENTIAL").SEQUENTIAL, "p": Path("x/y")})
    assert got == {"a": 3, "b": [0.5, None, None], "1": [2], "e": "ModelType.SEQUENTIAL", "p": "x/y"}
    assert json.loads(json.dumps(got, allow_nan=False)) == got
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_folder(tmp_path) == hashlib.sha256(b"f\0abc").hexdigest()


def test_first_error_line_picks_the_error_line():
    text = "Traceback (most recent call last):\n  File x\nValueError: bad value\n(during handling)"
    assert first_error_line(text) == "ValueError: bad value"
