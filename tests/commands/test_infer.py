"""flexunet-infer: masks at the original size as palette PNGs, overlays, probabilities, safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from flexunet.commands.infer import infer
from flexunet.errors import ConfigError, DataError
from flexunet.models import build_flexunet
from tests.helpers import SHARED_DATA, fake_run

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
        [f"ckpt_path={run_dir}", f"infer.images_dir={images_dir}", f"infer.output_dir={out}",
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
        [f"ckpt_path={run_dir / 'checkpoints' / 'best.keras'}", f"infer.images_dir={images_dir}",
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
        _infer(compose, [f"ckpt_path={run_dir}", f"infer.images_dir={empty}"], tmp_path)
