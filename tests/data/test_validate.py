"""The pre-training data check and the safe image loader.

Corruptions are made on copies in tmp_path; the shared sample data is only read.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from flexunet.data.pairing import Pair, pair_files, require_complete
from flexunet.data.validate import (
    Problem,
    check_pairs,
    format_problems,
    load_image_rgb,
    raise_if_problems,
)
from flexunet.errors import DataError
from tests.helpers import SHARED_DATA, png_bomb

DATA = SHARED_DATA
BINARY = {"0": 0, "255": 1}



def _pairs(root: Path) -> list[Pair]:
    images, masks = root / "images", root / "masks"
    return require_complete(pair_files(images, masks), images, masks)


@pytest.fixture
def ham(tmp_path: Path) -> Path:
    """A writable copy of ham10000-mini (6 pairs, about 0.5 MB)."""
    root = tmp_path / "ham"
    shutil.copytree(DATA / "ham10000-mini", root)
    return root


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, format_problems(problems)
    return problems[0]


# --------------------------------------------------------------------------- clean data


@pytest.mark.shared_data
@pytest.mark.parametrize("subset", ["ph2", "ham10000-mini", "formats/ph2-bmp"])
def test_sample_data_has_no_problems(subset: str) -> None:
    pairs = _pairs(DATA / subset)
    assert check_pairs(pairs, BINARY, min_size=(256, 256)) == []
    raise_if_problems([], "clean")  # no-op


@pytest.mark.shared_data
def test_load_image_rgb_formats() -> None:
    jpg = load_image_rgb(DATA / "ph2" / "images" / "IMD002.jpg")
    bmp = load_image_rgb(DATA / "formats" / "ph2-bmp" / "images" / "IMD002.bmp")
    assert jpg.dtype == np.uint8 and jpg.ndim == 3 and jpg.shape[2] == 3
    assert bmp.shape == jpg.shape  # same PH2 image, two encodings
    assert np.abs(jpg.astype(int) - bmp.astype(int)).mean() < 5


# --------------------------------------------------------------------------- one error each


@pytest.mark.shared_data
def test_unreadable_image(ham: Path) -> None:
    bad = ham / "images" / "ISIC_0024340.jpg"
    bad.write_bytes(b"\x00garbage, not a JPEG" * 50)
    problem = _only(check_pairs(_pairs(ham), BINARY))
    assert problem.path == bad and "ISIC_0024340.jpg" in problem.problem
    assert "not a readable image" in problem.problem
    with pytest.raises(DataError, match="ISIC_0024340.jpg"):
        load_image_rgb(bad)


@pytest.mark.shared_data
def test_truncated_jpeg(ham: Path) -> None:
    bad = ham / "images" / "ISIC_0024355.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    problem = _only(check_pairs(_pairs(ham), BINARY))
    assert problem.path == bad
    assert "ISIC_0024355.jpg" in problem.problem and "truncated" in problem.problem
    with pytest.raises(DataError, match="ISIC_0024355.jpg.*truncated"):
        load_image_rgb(bad)


@pytest.mark.shared_data
def test_truncation_detected_even_if_pillow_told_to_ignore_it(
    ham: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = ham / "images" / "ISIC_0024355.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DataError, match="truncated"):
        load_image_rgb(bad)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


@pytest.mark.shared_data
def test_truncated_mask(ham: Path) -> None:
    bad = ham / "masks" / "ISIC_0024357.png"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    problem = _only(check_pairs(_pairs(ham), BINARY))
    assert problem.path == bad and "ISIC_0024357.png" in problem.problem


@pytest.mark.shared_data
def test_size_mismatch(ham: Path) -> None:
    mask = ham / "masks" / "ISIC_0024377.png"
    with Image.open(mask) as img:
        img.resize((300, 225), Image.NEAREST).save(mask)
    problem = _only(check_pairs(_pairs(ham), BINARY))
    assert problem.path == mask
    assert "ISIC_0024377.png" in problem.problem and "ISIC_0024377.jpg" in problem.problem
    assert "300x225" in problem.problem and "600x450" in problem.problem


@pytest.mark.shared_data
def test_colour_not_in_rgb_map(ham: Path) -> None:
    mask = ham / "masks" / "ISIC_0024383.png"
    with Image.open(mask) as img:
        rgb = np.asarray(img.convert("RGB")).copy()
    rgb[:10, :10] = (255, 0, 0)
    Image.fromarray(rgb).save(mask)
    problem = _only(check_pairs(_pairs(ham), BINARY))
    assert problem.path == mask and "ISIC_0024383.png" in problem.problem
    assert "(255,0,0) x 100 px" in problem.problem and "rgb_map" in problem.problem
    # red is 255 away from both black and white: no tolerance can snap it unambiguously
    assert "equally near" not in problem.problem
    assert check_pairs(_pairs(ham), BINARY, tolerance=255) != []
    assert check_pairs(_pairs(ham), {"0": 0, "255": 1, "255,0,0": 1}) == []


@pytest.mark.shared_data
def test_image_smaller_than_min_size(ham: Path) -> None:
    problems = check_pairs(_pairs(ham), BINARY, min_size=(640, 400))
    assert len(problems) == 6
    assert all("600x450" in p.problem and "min_size 640x400" in p.problem for p in problems)
    assert all(p.path.name in p.problem for p in problems)
    assert check_pairs(_pairs(ham), BINARY, min_size=(600, 450)) == []


def test_decompression_bomb_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "bomb"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    png_bomb(root / "images" / "huge.png", 20000, 20000)  # 400 Mpx, ~50 kB on disk
    assert (root / "images" / "huge.png").stat().st_size < 200_000
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "huge.png")

    original_load = ImageFile.ImageFile.load

    def guarded_load(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        assert self.size[0] * self.size[1] <= 1_000_000, "a bomb was decoded"
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded_load)
    problems = check_pairs(_pairs(root), BINARY)
    problem = next(p for p in problems if p.path.parent.name == "images")
    assert "huge.png" in problem.problem and "decompression bomb" in problem.problem
    assert "raise data.max_pixels (infer.max_pixels for flexunet-infer)" in problem.problem
    with pytest.raises(DataError, match="huge.png.*decompression bomb"):
        load_image_rgb(root / "images" / "huge.png")


@pytest.mark.shared_data
def test_max_pixels_limit(ham: Path) -> None:
    problems = check_pairs(_pairs(ham)[:1], BINARY, max_pixels=100_000)
    assert {p.path.name for p in problems} == {"ISIC_0024340.jpg", "ISIC_0024340.png"}
    assert all("600x450 = 270,000 pixels" in p.problem for p in problems)
    with pytest.raises(DataError, match="ISIC_0024340.jpg.*decompression bomb"):
        load_image_rgb(ham / "images" / "ISIC_0024340.jpg", max_pixels=100_000)


# --------------------------------------------------------------------------- reporting


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.shared_data
def test_failed_check_leaves_folder_untouched(ham: Path) -> None:
    (ham / "images" / "ISIC_0024340.jpg").write_bytes(b"garbage")
    truncated = ham / "images" / "ISIC_0024355.jpg"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with Image.open(ham / "masks" / "ISIC_0024377.png") as img:
        img.resize((100, 100)).save(ham / "masks" / "ISIC_0024377.png")
    before = _digest(ham)
    problems = check_pairs(_pairs(ham), BINARY, min_size=(1000, 1000))
    with pytest.raises(DataError) as info:
        raise_if_problems(problems, f"checking {ham}")
    assert _digest(ham) == before
    message = str(info.value)
    assert message.startswith(f"checking {ham}: {len(problems)} problem(s)")
    for name in ("ISIC_0024340.jpg", "ISIC_0024355.jpg", "ISIC_0024377.png"):
        assert name in message


def test_format_and_raise_cap_at_twenty() -> None:
    problems = [
        Problem(Path(f"/data/img{i:02d}.jpg"), f"img{i:02d}.jpg: broken") for i in range(25)
    ]
    table = format_problems(problems[:2])
    lines = table.splitlines()
    assert lines[0].startswith("file") and "problem" in lines[0]
    assert lines[2].startswith("/data/img00.jpg") and lines[2].endswith("img00.jpg: broken")
    with pytest.raises(DataError) as info:
        raise_if_problems(problems, "prepare")
    message = str(info.value)
    assert "25 problem(s)" in message and "5 more" in message
    assert "img19.jpg" in message and "img20.jpg" not in message
    assert format_problems([]) == "no problems found"


def _exif_jpeg(path: Path, width: int, height: int, orientation: int) -> None:
    """A JPEG stored ``width x height`` (left half red, right half blue) with an EXIF
    Orientation tag."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)


def test_exif_orientation_is_applied_to_images_and_sizes(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _exif_jpeg(tmp_path / "images" / "turned.jpg", 40, 20, orientation=6)  # shows 20x40
    Image.fromarray(np.zeros((40, 20), np.uint8)).save(tmp_path / "masks" / "turned.png")
    assert check_pairs(_pairs(tmp_path), BINARY) == []
    image = load_image_rgb(tmp_path / "images" / "turned.jpg")
    assert image.shape == (40, 20, 3)
    # orientation 6: turned clockwise, so the stored left half (red) is on top
    assert image[5, 10, 0] > 200 and image[-5, 10, 2] > 200
    Image.fromarray(np.zeros((20, 40), np.uint8)).save(tmp_path / "masks" / "turned.png")
    (problem,) = check_pairs(_pairs(tmp_path), BINARY)
    assert "mask is 40x20 but its image turned.jpg is 20x40" in problem.problem


def test_exif_orientation_of_a_mask_is_applied_too(tmp_path: Path) -> None:
    mask = np.zeros((20, 40), np.uint8)
    mask[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 8  # shows 20 wide, 40 high
    Image.fromarray(mask).save(tmp_path / "mask.png", exif=exif)
    from flexunet.data.masks import decode_mask

    assert decode_mask(tmp_path / "mask.png", BINARY).shape == (40, 20)


def test_folders_and_link_loops_are_problems_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    with pytest.raises(DataError, match="dir.jpg: image is a folder"):
        load_image_rgb(tmp_path / "dir.jpg")
    with pytest.raises(DataError, match="a.jpg: cannot open image .*symbolic links"):
        load_image_rgb(tmp_path / "a.jpg")


def test_check_reports_a_mid_grey_mask_under_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(tmp_path / "masks" / "a.png")
    pair = Pair("a", tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png")
    binary = {"0,0,0": 0, "255,255,255": 1}
    problems = check_pairs([pair], binary, threshold=128)
    assert [p.path for p in problems] == [pair.mask]
    assert "100.0% of the mask's pixels are mid-grey" in problems[0].problem
