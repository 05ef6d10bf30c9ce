"""Tests for the synthetic dermoscopy-like data generator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexunet.data import synthetic
from flexunet.data.synthetic import generate_synthetic, render_sample
from flexunet.errors import DataError

SMALL = {"width": 96, "height": 64}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _grey(image: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    return np.rint(image.astype(np.float64) @ weights).astype(np.uint8)


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    inter = np.logical_and(pred, truth).sum()
    return float(2.0 * inter / (pred.sum() + truth.sum()))


def _best_threshold(grey: np.ndarray, truth: np.ndarray) -> tuple[int, bool, float]:
    """Exhaustive search over every grey level and both polarities: (t, dark, dice)."""
    best = (0, True, -1.0)
    for dark in (True, False):
        for t in range(256):
            pred = grey <= t if dark else grey > t
            score = _dice(pred, truth)
            if score > best[2]:
                best = (t, dark, score)
    return best


@pytest.fixture(scope="module")
def twenty(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, np.ndarray]]:
    """Twenty default-size samples, read back from the files on disk."""
    root = generate_synthetic(tmp_path_factory.mktemp("synth") / "twenty", count=20)
    samples = []
    for i in range(20):
        image = np.asarray(Image.open(root / "images" / f"synth_{i:05d}.jpg"))
        mask = np.asarray(Image.open(root / "masks" / f"synth_{i:05d}.png"))
        samples.append((image, mask))
    return samples


def test_layout_and_manifest(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "ds", count=3, seed=5, hair_probability=0.25, **SMALL)
    assert out == tmp_path / "ds"
    assert sorted(_files(out)) == [
        "images/synth_00000.jpg",
        "images/synth_00001.jpg",
        "images/synth_00002.jpg",
        "manifest.json",
        "masks/synth_00000.png",
        "masks/synth_00001.png",
        "masks/synth_00002.png",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 3
    assert manifest["params"]["seed"] == 5
    assert manifest["params"]["hair_probability"] == 0.25
    assert manifest["params"]["width"] == 96 and manifest["params"]["height"] == 64
    with Image.open(out / "images" / "synth_00000.jpg") as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (96, 64))
    with Image.open(out / "masks" / "synth_00000.png") as mask:
        assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (96, 64))
    # No temporary sibling is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_generation_is_byte_identical(tmp_path: Path) -> None:
    a = generate_synthetic(tmp_path / "a", count=4, **SMALL)
    b = generate_synthetic(tmp_path / "b", count=4, **SMALL)
    assert _files(a) == _files(b)


def test_image_does_not_depend_on_count(tmp_path: Path) -> None:
    three = _files(generate_synthetic(tmp_path / "three", count=3, **SMALL))
    five = _files(generate_synthetic(tmp_path / "five", count=5, **SMALL))
    for name, data in three.items():
        if name != "manifest.json":
            assert five[name] == data, name
    other_seed = _files(generate_synthetic(tmp_path / "seed", count=3, seed=1, **SMALL))
    assert other_seed["images/synth_00000.jpg"] != three["images/synth_00000.jpg"]


def test_render_sample_types_and_hairs_not_in_mask() -> None:
    image, mask = render_sample(np.random.default_rng([7, 0]), 80, 60, 0.0)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert mask.shape == (60, 80) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1} and mask.any()
    # Hairs are drawn after the mask is fixed: the same state with and without hair gives the
    # same mask but a different image.
    for i in range(5):
        no_hair = render_sample(np.random.default_rng([7, i]), 80, 60, 0.0)
        hair = render_sample(np.random.default_rng([7, i]), 80, 60, 1.0)
        np.testing.assert_array_equal(no_hair[1], hair[1])
        assert not np.array_equal(no_hair[0], hair[0])


def test_masks_binary_and_lesion_sizes_vary(twenty: list[tuple[np.ndarray, np.ndarray]]) -> None:
    fractions = []
    for image, mask in twenty:
        assert image.shape == (192, 256, 3)
        assert set(np.unique(mask)) <= {0, 255}
        fractions.append(float((mask == 255).mean()))
    assert min(fractions) > 0.0
    assert min(fractions) < 0.15
    assert max(fractions) > 0.25


def test_not_separable_by_a_global_grey_threshold(
    twenty: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    greys = [_grey(image) for image, _ in twenty]
    truths = [mask == 255 for _, mask in twenty]

    # A threshold tuned on one image and applied to all of them.
    t, dark, _ = _best_threshold(greys[0], truths[0])
    transferred = [
        _dice(grey <= t if dark else grey > t, truth)
        for grey, truth in zip(greys, truths, strict=True)
    ]
    assert np.mean(transferred) < 0.95

    # Even the oracle: the best threshold chosen separately for every image.
    oracle = [_best_threshold(g, m)[2] for g, m in zip(greys, truths, strict=True)]
    assert np.mean(oracle) < 0.95
    # ...while the lesion is still visibly darker than the skin on most images (learnable).
    assert np.mean(np.array(oracle) > 0.6) >= 0.75


def test_second_call_is_idempotent(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "ds", count=3, **SMALL)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert generate_synthetic(tmp_path / "ds", count=3, **SMALL) == out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_conflicting_manifest_raises_and_keeps_files(tmp_path: Path) -> None:
    out = generate_synthetic(tmp_path / "ds", count=3, seed=1, **SMALL)
    before = _files(out)
    with pytest.raises(DataError, match=re.escape(str(out))):
        generate_synthetic(out, count=3, seed=2, **SMALL)
    with pytest.raises(DataError, match=re.escape(str(out))):
        generate_synthetic(out, count=4, seed=1, **SMALL)
    assert _files(out) == before


def test_foreign_or_incomplete_folder_raises(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=re.escape(str(foreign))):
        generate_synthetic(foreign, count=2, **SMALL)
    assert _files(foreign) == {"notes.txt": b"keep me"}

    out = generate_synthetic(tmp_path / "ds", count=2, **SMALL)
    (out / "images" / "extra.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="foreign"):
        generate_synthetic(out, count=2, **SMALL)
    (out / "images" / "extra.jpg").unlink()
    (out / "masks" / "synth_00001.png").unlink()
    with pytest.raises(DataError, match="missing"):
        generate_synthetic(out, count=2, **SMALL)


def test_empty_existing_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    out = generate_synthetic(tmp_path / "ds", count=2, **SMALL)
    assert (out / "manifest.json").is_file()


def test_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = synthetic.render_sample

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(tmp_path / "ds", count=5, **SMALL)
    assert list(tmp_path.iterdir()) == []
