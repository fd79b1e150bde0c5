"""Fast sequential training (issue 8): per-position losses on one row per user, trimmed length groups."""
import collections

import pytest
import torch
from recbole.data.interaction import Interaction

from conftest import build_blairclip, write_blairclip_dataset

MAX_LEN = 50


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_blairclip_dataset(tmp_path / "dataset_atomic")


def padded(rows, width=MAX_LEN):
    out = torch.zeros(len(rows), width, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row)
    return out


# hand-built users: full sequences of internal item ids (history + the last training target)
SEQUENCES = [[3, 5, 7, 9, 2, 11], [4, 6], [8, 1, 10], [12, 13, 14, 15, 16, 17, 18, 19, 20]]


def user_rows():
    """One row per user: item_id_list = every item but the last, item_id = the last."""
    return padded([s[:-1] for s in SEQUENCES]), torch.tensor([len(s) - 1 for s in SEQUENCES]), \
        torch.tensor([s[-1] for s in SEQUENCES])


def prefix_rows():
    """RecBole's rows: one per prefix with >= 1 earlier item, users in order, prefixes in order."""
    hist, targets = [], []
    for s in SEQUENCES:
        for k in range(1, len(s)):
            hist.append(s[:k])
            targets.append(s[k])
    return padded(hist), torch.tensor([len(h) for h in hist]), torch.tensor(targets)


@pytest.mark.parametrize("seq_encoder,groups", [("transformer", 1), ("transformer", 3), ("mean", 2)])
def test_per_position_losses_equal_per_prefix_losses(tmp_path, data, seq_encoder, groups):
    *_, model = build_blairclip(tmp_path, seq_encoder=seq_encoder, length_groups=groups, n_layers=2)
    model.eval()  # no dropout: the two paths must agree exactly
    with torch.no_grad():
        table = model.item_parts(torch.arange(model.n_items))[0]
        per_position = model.next_item_losses(*user_rows(), table, per_position=True)
        per_prefix = model.next_item_losses(*prefix_rows(), table, per_position=False)
    assert per_position.shape == per_prefix.shape == (sum(len(s) - 1 for s in SEQUENCES),)
    assert torch.allclose(per_position, per_prefix, atol=1e-5)
    # and the training loss (their mean) is the same
    assert per_position.mean().item() == pytest.approx(per_prefix.mean().item(), abs=1e-6)


@pytest.mark.parametrize("seq_encoder", ["transformer", "mean"])
def test_causal_mask(tmp_path, data, seq_encoder):
    *_, model = build_blairclip(tmp_path, seq_encoder=seq_encoder, n_layers=2)
    model.eval()
    seq = padded([[3, 5, 7, 9, 2, 11], [4, 6, 8]], width=8)
    changed = seq.clone()
    changed[0, 3] = 17  # a later item of user 0
    changed[1, 2] = 1  # the last item of user 1
    with torch.no_grad():
        table = model.item_parts(torch.arange(model.n_items))[0]
        before, after = model.sequence_states(seq, table), model.sequence_states(changed, table)
    assert torch.allclose(before[0, :3], after[0, :3], atol=1e-6)
    assert not torch.allclose(before[0, 3], after[0, 3])
    assert torch.allclose(before[1, :2], after[1, :2], atol=1e-6)
    assert not torch.allclose(before[1, 2], after[1, 2])


@pytest.mark.parametrize("per_position", [True, False])
def test_trimmed_batches_equal_padded_ones(tmp_path, data, per_position):
    *_, model = build_blairclip(tmp_path, length_groups=3, n_layers=2)
    model.eval()
    rows = user_rows() if per_position else prefix_rows()
    with torch.no_grad():
        table = model.item_parts(torch.arange(model.n_items))[0]
        model.trim_batches = True
        trimmed = model.next_item_losses(*rows, table, per_position=per_position)
        full_sort_trimmed = model.forward(rows[0], rows[1], table)
        model.trim_batches = False  # every row padded to MAX_ITEM_LIST_LENGTH
        padded_losses = model.next_item_losses(*rows, table, per_position=per_position)
        full_sort_padded = model.forward(rows[0], rows[1], table)
    assert torch.allclose(trimmed, padded_losses, atol=1e-5)
    assert torch.allclose(full_sort_trimmed, full_sort_padded, atol=1e-5)


def _targets_by_user(inter_feat, per_position):
    """Multiset of (user, target) pairs a training table trains on."""
    pairs = collections.Counter()
    users = inter_feat["user_id"].tolist()
    lists = inter_feat["item_id_list"].tolist()
    lengths = inter_feat["item_length"].tolist()
    targets = inter_feat["item_id"].tolist()
    for user, hist, length, target in zip(users, lists, lengths, targets):
        pairs[(user, target)] += 1
        if per_position:
            for item in hist[1:length]:
                pairs[(user, item)] += 1
    return pairs


@pytest.mark.parametrize("max_len", [50, 2])
def test_user_rows_train_every_target_once(tmp_path, data, max_len):
    """One row per user (several when the history is longer than MAX_ITEM_LIST_LENGTH) covers every target."""
    _, _, prefix_train, _, _, _ = build_blairclip(tmp_path, train_rows="prefix", MAX_ITEM_LIST_LENGTH=max_len)
    _, _, user_train, valid, _, model = build_blairclip(tmp_path, train_rows="user", MAX_ITEM_LIST_LENGTH=max_len)
    prefix_feat, user_feat = prefix_train._dataset.inter_feat, user_train._dataset.inter_feat
    assert _targets_by_user(user_feat, True) == _targets_by_user(prefix_feat, False)
    n_users = len(set(prefix_feat["user_id"].tolist()))
    if max_len == 50:
        assert len(user_feat) == n_users  # exactly one row per user
    else:
        assert n_users < len(user_feat) < len(prefix_feat)
    # evaluation rows are untouched
    _, _, _, prefix_valid, _, _ = build_blairclip(tmp_path, train_rows="prefix", MAX_ITEM_LIST_LENGTH=max_len)
    for field in ("user_id", "item_id", "item_id_list"):
        assert torch.equal(valid._dataset.inter_feat[field], prefix_valid._dataset.inter_feat[field])


def test_training_losses_agree_between_modes_on_the_real_loaders(tmp_path, data):
    """Same weights: mean loss over the user rows = mean loss over RecBole's prefix rows (no dropout)."""
    _, _, prefix_train, _, _, model = build_blairclip(tmp_path, train_rows="prefix", n_layers=2)
    _, _, user_train, _, _, _ = build_blairclip(tmp_path, train_rows="user", n_layers=2)
    model.eval()

    def all_losses(loader, per_position):
        feat = loader._dataset.inter_feat
        with torch.no_grad():
            table = model.item_parts(torch.arange(model.n_items))[0]
            return model.next_item_losses(feat["item_id_list"], feat["item_length"], feat["item_id"], table,
                                          per_position=per_position)

    per_user = all_losses(user_train, True)
    per_prefix = all_losses(prefix_train, False)
    assert len(per_user) == len(per_prefix)
    assert per_user.sum().item() == pytest.approx(per_prefix.sum().item(), rel=1e-5)
    batch = Interaction({k: v[:8] for k, v in user_train._dataset.inter_feat.interaction.items()})
    rec, contrastive = model.calculate_loss(batch)
    assert torch.isfinite(rec) and torch.isfinite(contrastive)
