"""Feature files: write/read round trip and every verification error of load_features (no models)."""
import json

import numpy as np
import pytest

from conftest import ITEM_HEADER as HEADER
from recbole_blairclip.errors import DatasetError
from recbole_blairclip.features.store import (
    Features, load_features, read_items, sha256_file, write_features,
)

def make_dataset(tmp_path, ids=("i1", "i2", "i3"), name="toy"):
    folder = tmp_path / name
    folder.mkdir()
    lines = [HEADER] + [f"{i}\ttext of {i}\ttitle {i}\tcat\tstore\thttp://example.invalid/{i}.jpg" for i in ids]
    (folder / f"{name}.item").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_simple(folder, text_dim=4, image_dim=3):
    items = read_items(folder / f"{folder.name}.item")
    n = len(items.item_ids)
    rng = np.random.default_rng(0)
    text = rng.standard_normal((n, text_dim)).astype(np.float32)
    image = rng.standard_normal((n, image_dim)).astype(np.float32)
    mask = np.ones(n, dtype=bool)
    mask[-1] = False
    image[-1] = 0
    write_features(folder, items, text, {"tag": "tt", "encoder": "t"}, image, mask, {"tag": "im", "encoder": "i"})
    return text, image, mask


def test_round_trip_and_file_names(tmp_path):
    folder = make_dataset(tmp_path)
    text, image, mask = write_simple(folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["toy.features.json", "toy.im.image.npy", "toy.im.image_mask.npy", "toy.item", "toy.tt.text.npy"]
    feats = load_features(folder)
    assert isinstance(feats, Features)
    assert feats.item_ids == ["i1", "i2", "i3"]
    np.testing.assert_array_equal(feats.text, text)
    np.testing.assert_array_equal(feats.image, image)
    np.testing.assert_array_equal(feats.image_mask, mask)
    assert feats.text.dtype == np.float32 and feats.image_mask.dtype == np.bool_
    assert (feats.text_dim, feats.image_dim) == (4, 3)
    meta = json.loads((folder / "toy.features.json").read_text())
    assert meta["item_file_sha256"] == sha256_file(folder / "toy.item")
    assert meta["image"]["num_missing"] == 1 and meta["text"]["dim"] == 4
    mm = load_features(folder, mmap=True)
    np.testing.assert_array_equal(mm.text, text)


def test_aligned_to_recbole_tokens(tmp_path):
    folder = make_dataset(tmp_path)
    text, image, mask = write_simple(folder)
    feats = load_features(folder)
    t, i, m = feats.aligned(["[PAD]", "i3", "i1"])
    np.testing.assert_array_equal(t, np.stack([np.zeros(4, np.float32), text[2], text[0]]))
    np.testing.assert_array_equal(i[1:], image[[2, 0]])
    assert m.tolist() == [False, False, True]
    with pytest.raises(DatasetError, match="'nope' is not in"):
        feats.aligned(["[PAD]", "nope"])


def test_missing_features_json(tmp_path):
    folder = make_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"toy\.features\.json.*blairclip features --dataset"):
        load_features(folder)


def test_item_file_changed(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    path = folder / "toy.item"
    path.write_text(path.read_text().replace("text of i2", "new text"), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"toy\.item: changed since the features were extracted.*rerun"):
        load_features(folder)
    assert load_features(folder, verify_item_file=False).item_ids == ["i1", "i2", "i3"]


def test_item_file_missing(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    (folder / "toy.item").unlink()
    with pytest.raises(DatasetError, match=r"toy\.item: item file missing"):
        load_features(folder)


def test_ids_mismatch_in_json(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    path = folder / "toy.features.json"
    meta = json.loads(path.read_text())
    meta["item_ids"] = ["i2", "i1", "i3"]
    path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="item ids differ from toy.item .first difference at row 0"):
        load_features(folder)


def test_ids_expected_by_caller(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    assert load_features(folder, item_ids=["i1", "i2", "i3"]).item_ids == ["i1", "i2", "i3"]
    with pytest.raises(DatasetError, match="not the ones expected by the caller"):
        load_features(folder, item_ids=["i1", "i3", "i2"])


def test_missing_npy(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    (folder / "toy.im.image_mask.npy").unlink()
    with pytest.raises(DatasetError, match=r"toy\.im\.image_mask\.npy: feature file missing"):
        load_features(folder)


def test_replaced_npy_checksum_and_dims(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    np.save(folder / "toy.tt.text.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(DatasetError, match=r"toy\.tt\.text\.npy: contents differ from the sha256"):
        load_features(folder)
    with pytest.raises(DatasetError, match=r"toy\.tt\.text\.npy: shape \(3, 5\) but features.json says \[3, 4\]"):
        load_features(folder, verify_checksums=False)
    np.save(folder / "toy.tt.text.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(DatasetError, match=r"shape \(2, 4\)"):
        load_features(folder, verify_checksums=False)


def test_nan_rows(tmp_path):
    folder = make_dataset(tmp_path)
    items = read_items(folder / "toy.item")
    text = np.ones((3, 2), np.float32)
    text[1, 0] = np.nan
    write_features(folder, items, text, {"tag": "tt"})
    with pytest.raises(DatasetError, match=r"1 rows contain NaN.*row 1 \(item i2\)"):
        load_features(folder)


def test_expected_encoder_tags(tmp_path):
    folder = make_dataset(tmp_path)
    write_simple(folder)
    assert load_features(folder, text_tag="tt", image_tag="im").text_dim == 4
    with pytest.raises(DatasetError, match="text features were made with encoder tag 'tt', not 'blair-roberta-base'"):
        load_features(folder, text_tag="blair-roberta-base")
    with pytest.raises(DatasetError, match="image features were made with encoder tag 'im', not 'pixels16'"):
        load_features(folder, image_tag="pixels16")


def test_text_only_and_require_image(tmp_path):
    folder = make_dataset(tmp_path)
    items = read_items(folder / "toy.item")
    write_features(folder, items, np.ones((3, 2), np.float32), {"tag": "tt"})
    feats = load_features(folder)
    assert feats.image is None and feats.image_mask is None
    with pytest.raises(DatasetError, match="no image features"):
        load_features(folder, require_image=True)


@pytest.mark.parametrize("body, message", [
    ("item_id:token\titem_text:token_seq\na\tx\na\ty\n", "line 3: duplicate item_id 'a'"),
    ("title:token_seq\nx\n", "no item_id:token column"),
    ("item_id:token\titem_text:token_seq\n\tx\n", "line 2: empty item_id"),
])
def test_bad_item_files(tmp_path, body, message):
    path = tmp_path / "bad.item"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        read_items(path)


def test_item_reader_keeps_text_verbatim(tmp_path):
    path = tmp_path / "x.item"
    path.write_text('item_id:token\titem_text:token_seq\n007\t"quoted" NA null 1e5 \u00e9\n008\t\n', encoding="utf-8")
    items = read_items(path)
    assert items.item_ids == ["007", "008"]
    assert items.column("item_text") == ['"quoted" NA null 1e5 \u00e9', ""]
    assert items.column("image_url") == ["", ""]
