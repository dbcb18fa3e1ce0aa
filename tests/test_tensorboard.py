"""The trainer writes its per-epoch metrics as TensorBoard scalars beside metrics.jsonl."""

import json

import pytest

from jointlab.train import TrainConfig, train


def test_training_writes_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="jointlab[tensorboard] (in dev) installs TensorBoard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(method="natural", arch="wrn-10-1", epochs=2, limit=64, batch_size=32, eval_limit=16)
    train(cfg, tmp_path, device="cpu", progress=False)
    events = EventAccumulator(str(tmp_path)).Reload()
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    tags = set(events.Tags()["scalars"])
    assert {"loss", "train_acc", "test_acc", "lr", "images_per_s"} <= tags
    for tag in tags:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([h[tag] for h in history], rel=1e-6)
