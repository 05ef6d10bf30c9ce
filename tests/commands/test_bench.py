"""flexunet-bench: a tiny end-to-end run writes benchmark.json; helpers and config errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexunet.errors import ConfigError
from tests.helpers import REPO

TINY = [
    "model.image_width=64", "model.image_height=64", "model.base_filters=4",
    "model.num_layers=3", "model.base_kernels=[3,3]", "data.limit=6",
    "~bench.models.k7_256", "bench.models.cpu_128.images=4", "bench.rounds=1",
    "bench.rss_images=2", "bench.infer_images=1", "bench.infer_reps=1",
    "bench.callback_epochs=2", "bench.callback_steps=1", "train.batch_size=2",
    "bench.epoch_rate.train_images=4", "bench.epoch_rate.valid_images=2",
    "bench.epoch_rate.epochs=2",
]


def test_bench_smoke_writes_every_key(tmp_path: Path, data_dir: Path) -> None:
    from flexunet.bench.measure import KEYS

    run_dir = tmp_path / "bench"
    cmd = [
        sys.executable, "-c", "from flexunet.commands.bench import main; main()",
        f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}", *TINY,
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((run_dir / "benchmark.json").read_text())
    for key in (*KEYS, "rss_mb_n", "rss_mb_4n", "infer_ms", "infer_tta_ms"):
        assert isinstance(report[key], (int, float)) and math.isfinite(report[key]), key
    assert report["models"]["cpu_128"]["input"] == "64x64"
    assert report["rss_mb_n"] > 0 and report["infer_tta_ms"] > 0
    assert set(report["callbacks_on_epoch_end_s"]) == {
        "EpochChangeInference", "TensorBoard", "TrainingPlots",
    }
    assert "overhead" in (run_dir / "bench.log").read_text()


def test_model_variant_replaces_keys_and_rejects_unknown_ones(compose) -> None:
    from flexunet.bench.measure import model_variant

    cfg = compose(config_name="bench")
    job = model_variant(cfg, cfg.bench.models.k7_256.model)
    assert (job.model.image_width, job.model.num_layers, list(job.model.base_kernels)) == (
        256, 6, [7, 7],
    )
    assert job.model.num_classes == cfg.mask.num_classes
    assert cfg.model.image_width == 128  # the composed config is left alone
    with pytest.raises(ConfigError, match="num_layer"):
        model_variant(cfg, {"num_layer": 4})


def test_model_axis_takes_other_model_configs(compose) -> None:
    from flexunet.bench.measure import model_specs, model_variant

    cfg = compose(["bench.zoo=[swin_unet,u2net_512]", "mask.num_classes=3"], config_name="bench")
    specs = model_specs(cfg.bench)
    assert list(specs) == ["cpu_128", "k7_256", "swin_unet", "u2net_512"]
    assert specs["u2net_512"].images == cfg.bench.zoo_images
    job = model_variant(cfg, {"image_width": 64}, "u2net_512")
    assert job.model._target_ == "flexunet.models.build_u2net"
    assert (job.model.image_width, job.model.image_height, job.model.base_filters) == (64, 512, 64)
    assert job.model.num_classes == 3  # follows the job's mask
    assert cfg.model._target_ == "flexunet.models.build_flexunet"  # the composed one is kept
    with pytest.raises(ConfigError, match="base_filters"):
        model_variant(cfg, {"base_filters": 4}, "swin_unet")
    with pytest.raises(ConfigError, match="no model config 'swin'.*swin_unet"):
        model_variant(cfg, {}, "swin")
    with pytest.raises(ConfigError, match="also a key of bench.models"):
        model_specs(compose(["bench.zoo=[k7_256]"], config_name="bench").bench)


def test_unknown_bench_key_is_an_error(compose) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["bench.round=3"], config_name="bench")


def test_epoch_timer_and_cycle() -> None:
    from flexunet.bench.measure import EpochTimer, cycle

    timer = EpochTimer()
    timer.on_train_begin()
    for epoch in range(3):
        timer.on_epoch_begin(epoch)
        timer.on_train_batch_end(0)
    assert len(timer.epoch_s) == 2 and len(timer.train_s) == 2  # the last is not over yet
    timer.on_train_end()
    assert len(timer.epoch_s) == 3 and len(timer.train_s) == 3
    assert all(0 <= t <= e for t, e in zip(timer.train_s, timer.epoch_s, strict=True))
    assert cycle(["a", "b"], 5) == ["a", "b", "a", "b", "a"]


def test_training_flops_are_three_times_the_forward_multiply_adds() -> None:
    import keras

    from flexunet.bench.measure import training_flops_per_image

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 pixels * 3*3*2*4 = 4608 MACs
    x = keras.layers.MaxPooling2D()(x)  # not matmul work: not counted
    x = keras.layers.Conv2DTranspose(3, 2, strides=2)(x)  # 4*4 inputs * 2*2*3*4 = 768 MACs
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)  # 8*8*3 inputs * 5 = 960 MACs
    model = keras.Model(inputs, outputs)
    assert training_flops_per_image(model) == 3 * 2 * (4608 + 768 + 960)


def test_matmul_peak_is_a_positive_rate() -> None:
    from flexunet.bench.measure import matmul_peak_gflops

    for dtype in ("float32", "bfloat16"):
        assert 0.1 < matmul_peak_gflops(dtype, size=128, reps=2) < 1e6
