"""The CLIP loss functions against hand-worked values and an independent numpy implementation."""
import math

import numpy as np
import pytest
import torch

from recbole_blairclip.model.loss import (
    CLIP_INIT_LOGIT_SCALE,
    MAX_LOGIT_SCALE,
    clip_contrastive_loss,
    clip_logits,
    clamp_logit_scale,
    clip_loss,
    contrastive_loss,
)
from conftest import build_blairclip, write_blairclip_dataset


def numpy_clip_loss(logits):
    """Independent implementation: mean over rows and columns of -log softmax at the diagonal."""
    logits = np.asarray(logits, dtype=np.float64)

    def ce(mat):
        shifted = mat - mat.max(axis=1, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -np.mean(np.diag(log_prob))

    return (ce(logits) + ce(logits.T)) / 2


def test_2x2_by_hand():
    logits = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    rows = (math.log(1 + math.exp(-2)) + math.log(2)) / 2  # text -> image
    cols = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-1))) / 2  # image -> text
    assert contrastive_loss(logits).item() == pytest.approx(rows, abs=1e-6)
    assert contrastive_loss(logits.t()).item() == pytest.approx(cols, abs=1e-6)
    assert clip_loss(logits).item() == pytest.approx((rows + cols) / 2, abs=1e-6)


def test_3x3_by_hand():
    logits = 3.0 * torch.eye(3)
    expected = math.log(1 + 2 * math.exp(-3))  # every row and column: e^3 / (e^3 + 2 e^0)
    assert clip_loss(logits).item() == pytest.approx(expected, abs=1e-6)
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    row01 = math.log(1 + 2 * math.exp(-1))  # rows 0, 1 and columns 0, 1
    row2 = math.log(3)  # row 2 and column 2 are all zero
    assert clip_loss(logits).item() == pytest.approx((2 * row01 + row2) / 3, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 5, 17])
def test_matches_numpy(n):
    rng = np.random.default_rng(n)
    logits = rng.normal(scale=4.0, size=(n, n))
    assert clip_loss(torch.tensor(logits)).item() == pytest.approx(numpy_clip_loss(logits), rel=1e-9, abs=1e-9)


def test_symmetric_in_text_and_image():
    gen = torch.Generator().manual_seed(0)
    text, image = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
    scale = torch.tensor(CLIP_INIT_LOGIT_SCALE)
    assert torch.allclose(clip_logits(text, image, scale), clip_logits(image, text, scale).t())
    assert clip_contrastive_loss(text, image, scale).item() == pytest.approx(
        clip_contrastive_loss(image, text, scale).item(), abs=1e-6)
    logits = torch.randn(4, 4, generator=gen)
    assert clip_loss(logits).item() == pytest.approx(clip_loss(logits.t()).item(), abs=1e-6)


def test_logits_are_scaled_cosines():
    text = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    image = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    logits = clip_logits(text, image, torch.tensor(math.log(10.0)))
    expected = 10.0 * torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 1 / math.sqrt(2)]])
    assert torch.allclose(logits, expected, atol=1e-5)
    # numpy cross-check of the full loss from embeddings
    assert clip_contrastive_loss(text, image, torch.tensor(math.log(10.0))).item() == pytest.approx(
        numpy_clip_loss(expected.numpy()), abs=1e-5)


def test_clip_init_and_clamp():
    assert math.exp(CLIP_INIT_LOGIT_SCALE) == pytest.approx(1 / 0.07)
    assert math.exp(MAX_LOGIT_SCALE) == pytest.approx(100.0)
    assert clamp_logit_scale(torch.tensor(50.0)).item() == pytest.approx(math.log(100.0))
    assert clamp_logit_scale(torch.tensor(-5.0)).item() == 0.0  # temperature <= 1
    assert clamp_logit_scale(torch.tensor(1.5), math.log(20.0)).item() == 1.5  # inside: unchanged
    # the loss itself does not clamp (one policy: after the optimiser step): exp(3) stays exp(3)
    text = torch.eye(3)
    assert clip_logits(text, text, torch.tensor(3.0)).max().item() == pytest.approx(math.exp(3.0), rel=1e-6)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_blairclip_dataset(tmp_path / "dataset_atomic")
    return tmp_path


def test_trainer_clamps_the_logit_scale_after_every_optimizer_step(tiny):
    """The protocol trainer's optimizer calls BLaIRCLIP.after_optimizer_step: the scale RecBole's training
    loop leaves after each step is clamped to [0, log(max_logit_scale)], while a bare optimizer does not."""
    from recbole_blairclip.quick_start import build_trainer

    max_scale = 20.0
    config, dataset, train, valid, test, model = build_blairclip(tiny, max_logit_scale=max_scale, learning_rate=0.5)
    trainer = build_trainer(config, model)
    seen = []
    trainer.optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append(model.logit_scale.item()))
    for start in (10.0, -10.0, 1.0):
        seen.clear()
        with torch.no_grad():
            model.logit_scale.fill_(start)
        trainer._train_epoch(train, 0, show_progress=False)
        assert len(seen) == len(train)  # one clamp per optimiser step
        assert all(0.0 <= value <= math.log(max_scale) + 1e-6 for value in seen)
        if start == 10.0:
            assert seen[0] == pytest.approx(math.log(max_scale))
        elif start == -10.0:
            assert seen[0] == 0.0
    assert seen[-1] != 1.0  # inside the bounds the scale is learned: it moved from 1.0
    # without the trainer's hook nothing clamps: the same step leaves the scale out of bounds
    *_, bare = build_blairclip(tiny, max_logit_scale=max_scale)
    optimizer = torch.optim.SGD(bare.parameters(), lr=0.0)
    with torch.no_grad():
        bare.logit_scale.fill_(10.0)
    optimizer.zero_grad()
    sum(bare.calculate_loss(next(iter(train)))).backward()
    optimizer.step()
    assert bare.logit_scale.item() == 10.0
    bare.after_optimizer_step()
    assert bare.logit_scale.item() == pytest.approx(math.log(max_scale))
