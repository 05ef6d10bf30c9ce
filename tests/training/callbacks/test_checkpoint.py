"""Epoch-end work kept off most epochs: the backup interval, last.keras once at the end, the
epoch-change grids at epoch 1, every n-th and the last."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from flexunet.training.callbacks import BackupAndRestore, EpochChangeInference, LastCheckpoint


def _tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    return x, np.eye(2, dtype="float32")[rng.integers(0, 2, (4, 8, 8))]


def test_backup_waits_for_its_interval_and_last_checkpoint_saves_once(tmp_path: Path) -> None:
    x, y = _data()
    saved = []
    for interval in (3600.0, 0.0):
        backup = BackupAndRestore(
            str(tmp_path / f"backup_{interval}"), delete_checkpoint=False, interval_s=interval
        )
        backup.bind_callbacks({})
        last = LastCheckpoint(str(tmp_path / f"last_{interval}.keras"))
        _tiny_model().fit(x, y, epochs=3, verbose=0, callbacks=[last, backup])
        saved.append(backup.completed_epochs())
        assert (tmp_path / f"last_{interval}.keras").is_file()
    assert saved == [0, 3]  # an hour's interval: no backup in 3 short epochs; 0: every epoch
    model = keras.saving.load_model(tmp_path / "last_0.0.keras")
    assert int(model.optimizer.iterations.numpy()) == 3  # saved after the last epoch


def test_epoch_change_grids_at_the_first_every_nth_and_last_epoch(tmp_path: Path) -> None:
    x, y = _data()
    callback = EpochChangeInference(str(tmp_path / "grids"), num_images=2, every_n_epochs=3)
    callback.bind_data(x, y.argmax(-1).astype(np.uint8))
    callback.set_model(_tiny_model())
    callback.on_train_begin()
    for epoch in range(7):  # epochs 1..7; early stopping after 7
        callback.on_epoch_end(epoch)
    callback.on_train_end()
    names = sorted(p.name for p in (tmp_path / "grids").iterdir())
    assert names == ["epoch_001.png", "epoch_003.png", "epoch_006.png", "epoch_007.png"]
