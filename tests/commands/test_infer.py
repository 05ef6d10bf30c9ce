"""flexunet-infer: masks at the original size as palette PNGs, overlays, probabilities, safety;
inputs (file, folder, glob), bad inputs (docs/inputs.md), EXIF orientation, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from flexunet.commands.infer import infer
from flexunet.errors import ConfigError, DataError
from flexunet.models import build_flexunet
from tests.helpers import SHARED_DATA, fake_run, png_bomb

HAM_IMAGE = SHARED_DATA / "ham10000-mini" / "images" / "ISIC_0024340.jpg"  # 600x450
PH2_IMAGE = SHARED_DATA / "ph2" / "images" / "IMD003.jpg"  # 765x574


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A run directory with an untrained 64x64 FlexUNet: inference needs no trained weights."""
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    return fake_run(tmp_path_factory.mktemp("infer_run"), data_dir, model)


@pytest.fixture()
def images_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for path in (HAM_IMAGE, PH2_IMAGE):
        (folder / path.name).symlink_to(path)
    return folder


def _infer(compose, overrides: list[str], out: Path) -> dict:
    cfg = compose(overrides, config_name="infer")
    return infer(cfg, HydraConfig.get().overrides.task)


@pytest.mark.shared_data
def test_masks_keep_the_original_size_and_the_rgb_map_palette(
    compose, run_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _infer(
        compose,
        [f"ckpt_path={run_dir}", f"infer.input={images_dir}", f"infer.output_dir={out}",
         "infer.overlay=true", "infer.probabilities=true"],
        tmp_path,
    )
    for source in (HAM_IMAGE, PH2_IMAGE):
        with Image.open(source) as image:
            size = image.size
        with Image.open(out / "masks" / f"{source.stem}.png") as mask:
            assert mask.mode == "P" and mask.size == size
            assert mask.getpalette()[:6] == [0, 0, 0, 255, 255, 255]  # mask/binary.yaml rgb_map
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1}
        for kind, mode in (("overlays", "RGB"), ("probabilities", "L")):
            with Image.open(out / kind / f"{source.stem}.png") as extra:
                assert (extra.mode, extra.size) == (mode, size)
    assert {(765, 574), (600, 450)} <= {Image.open(p).size for p in (out / "masks").iterdir()}


@pytest.mark.shared_data
def test_default_output_is_inside_the_run_dir_with_every_option(
    compose, run_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    (images_dir / PH2_IMAGE.name).unlink()
    result = _infer(
        compose,
        [f"ckpt_path={run_dir / 'checkpoints' / 'best.keras'}", f"infer.input={images_dir}",
         "infer.tta=flips", "infer.postprocess=largest_component", "infer.tiled=true",
         "infer.tile_scale=0.25"],
        tmp_path,
    )
    mask = tmp_path / "run" / "predictions" / "masks" / f"{HAM_IMAGE.stem}.png"  # paths.run_dir
    assert result["output_dir"] == str(mask.parent.parent) and result["count"] == 1
    assert Image.open(mask).size == (600, 450)


@pytest.mark.shared_data
def test_refuses_to_write_over_a_non_empty_output_dir(
    compose, run_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    overrides = [f"ckpt_path={run_dir}", f"infer.images_dir={images_dir}",
                 f"infer.output_dir={out}"]
    with pytest.raises(ConfigError, match="not empty"):
        _infer(compose, overrides, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    _infer(compose, [*overrides, "infer.overwrite=true"], tmp_path)
    assert (out / "keep.txt").read_text() == "a user's file"
    assert len(list((out / "masks").iterdir())) == 2


def test_folder_without_images_is_an_error_naming_it(
    compose, run_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"{empty}: no images"):
        _infer(compose, [f"ckpt_path={run_dir}", f"infer.input={empty}"], tmp_path)


# --------------------------------------------------------------------------- bad inputs

#: what docs/inputs.md promises for each case: None = predicted, else part of the reason
CASES = {
    "good.jpg": None,
    "deep.png": None,  # 16-bit greyscale
    "rgba.png": None,
    "grey.jpg": None,
    "turned.jpg": None,  # EXIF orientation 6
    "läsion 1.jpg": None,
    "truncated.jpg": "truncated",
    "empty.png": "not a readable image",
    "huge.png": "decompression bomb",
    "dir.jpg": "is a folder",
    "a.jpg": "symbolic links",
    "b.jpg": "symbolic links",
}


def _rgb(height: int = 32, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> Path:
    """A folder holding one file of each case of docs/inputs.md's table."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "good.jpg")
    Image.fromarray((np.arange(48 * 32).reshape(32, 48) * 40).astype(np.uint16)).save(
        folder / "deep.png"
    )
    Image.fromarray(np.dstack([_rgb(), np.full((32, 48), 128, np.uint8)])).save(
        folder / "rgba.png"
    )
    Image.fromarray(_rgb()[..., 0]).save(folder / "grey.jpg")
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # stored left half red: on top once turned upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(folder / "turned.jpg", exif=exif, quality=95)
    Image.fromarray(_rgb()).save(folder / "läsion 1.jpg")
    whole = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.png").write_bytes(b"")
    png_bomb(folder / "huge.png", 30000, 30000)
    (folder / "dir.jpg").mkdir()
    (folder / "a.jpg").symlink_to(folder / "b.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    assert sorted(p.name for p in folder.iterdir()) == sorted(CASES)
    return folder


def _errors(out: Path) -> dict[str, str]:
    with (out / "infer_errors.csv").open(newline="") as f:
        return {Path(row["path"]).name: row["error"] for row in csv.DictReader(f)}


def test_bad_images_are_listed_and_the_others_predicted(
    compose, run_dir: Path, bad_inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"^6 of 12 images skipped; see .*infer_errors.csv$"):
        _infer(compose, [f"ckpt_path={run_dir}", f"infer.input={bad_inputs}",
                         f"infer.output_dir={out}", "infer.overlay=true"], tmp_path)
    errors = _errors(out)
    for name, reason in CASES.items():
        stem = Path(name).stem
        if reason is None:
            assert (out / "masks" / f"{stem}.png").is_file(), name
            assert name not in errors
        else:
            assert reason in errors[name], (name, errors[name])
            assert not (out / "masks" / f"{stem}.png").exists()
    assert "infer.max_pixels" in errors["huge.png"]
    # EXIF: mask and overlay are upright (as a viewer shows the photo), not in stored order
    with Image.open(out / "masks" / "turned.png") as mask:
        assert mask.size == (20, 40)
    overlay = np.asarray(Image.open(out / "overlays" / "turned.png"))
    assert overlay.shape == (40, 20, 3)
    top, bottom = np.median(overlay[:20, :, 0]), np.median(overlay[20:, :, 0])
    assert top > 200 > bottom  # red on top (the median ignores the drawn contour)
    for name in ("deep", "rgba", "grey", "läsion 1"):
        with Image.open(out / "overlays" / f"{name}.png") as image:
            assert (image.mode, image.size) == ("RGB", (48, 32)), name


def test_stop_glob_resume_and_single_file(
    compose, run_dir: Path, bad_inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pattern = f"infer.input='{bad_inputs}/*d.jpg'"  # good, truncated, turned
    base = [f"ckpt_path={run_dir}", f"infer.output_dir={out}"]
    with pytest.raises(DataError, match="truncated.jpg: image is truncated"):
        _infer(compose, [*base, pattern, "infer.on_error=stop"], tmp_path)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["good.png"]  # kept
    assert not (out / "infer_errors.csv").exists()
    with pytest.raises(ConfigError, match="infer.resume=true to continue"):
        _infer(compose, [*base, pattern], tmp_path)
    with pytest.raises(ConfigError, match="choose one"):
        _infer(compose, [*base, pattern, "infer.resume=true", "infer.overwrite=true"], tmp_path)
    done = (out / "masks" / "good.png").stat().st_mtime_ns
    with pytest.raises(DataError, match="1 of 3 images skipped"):
        _infer(compose, [*base, pattern, "infer.resume=true"], tmp_path)
    assert (out / "masks" / "good.png").stat().st_mtime_ns == done  # not predicted again
    assert (out / "masks" / "turned.png").is_file()
    assert list(_errors(out)) == ["truncated.jpg"]
    # a single file, also one whose name has a space and a non-ASCII letter; the former key
    result = _infer(compose, [*base, f"infer.input='{bad_inputs}/läsion 1.jpg'",
                              "infer.resume=true"], tmp_path)
    assert result["count"] == 1 and (out / "masks" / "läsion 1.png").is_file()
    assert _errors(out) == {}  # the resumed run's list replaces the old one
    result = _infer(compose, [*base, f"infer.images_dir={bad_inputs}/good.jpg",
                              "infer.resume=true"], tmp_path)
    assert result == {"output_dir": str(out), "count": 0, "resumed": 1}


def test_input_options_are_checked(
    compose, run_dir: Path, bad_inputs: Path, tmp_path: Path
) -> None:
    base = [f"ckpt_path={run_dir}"]
    with pytest.raises(ConfigError, match="infer.input is required"):
        _infer(compose, base, tmp_path)
    with pytest.raises(ConfigError, match="give infer.input only"):
        _infer(compose, [*base, f"infer.input={bad_inputs}", "infer.images_dir=x"], tmp_path)
    with pytest.raises(ConfigError, match="infer.on_error='ignore'"):
        _infer(compose, [*base, f"infer.input={bad_inputs}", "infer.on_error=ignore"], tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        _infer(compose, [*base, f"infer.input={bad_inputs}/nothing"], tmp_path)
    with pytest.raises(DataError, match="matches no image"):
        _infer(compose, [*base, f"infer.input='{bad_inputs}/x*.jpg'"], tmp_path)
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("same.jpg", "same.png"):
        Image.fromarray(_rgb()).save(twins / name)
    with pytest.raises(DataError, match="share the stem 'same'"):
        _infer(compose, [*base, f"infer.input={twins}"], tmp_path)
    with pytest.raises(DataError, match=r"^1 of 1 images skipped"):
        _infer(compose, [*base, f"infer.input={bad_inputs}/good.jpg", "infer.max_pixels=100"],
               tmp_path)


@pytest.mark.shared_data
def test_a_list_of_runs_predicts_their_mean_probability(
    compose, run_dir: Path, images_dir: Path, tmp_path: Path, data_dir: Path
) -> None:
    import keras

    keras.utils.set_random_seed(11)
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    other = fake_run(tmp_path / "other_run", data_dir, model)
    maps = {}
    for name, ckpt in (("a", str(run_dir)), ("b", str(other)), ("ab", f"[{run_dir},{other}]")):
        out = tmp_path / name
        _infer(
            compose,
            [f"ckpt_path={ckpt}", f"infer.input={images_dir}", f"infer.output_dir={out}",
             "infer.probabilities=true"],
            tmp_path,
        )
        with Image.open(out / "probabilities" / f"{HAM_IMAGE.stem}.png") as probs:
            maps[name] = np.asarray(probs, dtype=np.float64)
    assert np.abs(maps["a"] - maps["b"]).max() > 10  # two different models
    assert np.abs(maps["ab"] - (maps["a"] + maps["b"]) / 2).max() <= 1.0  # 8-bit rounding
