"""Pairing images with masks by stem, on the sample data and on small tmp folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flexunet.data.pairing import IMAGE_EXTENSIONS, Pair, pair_files, require_complete
from flexunet.errors import DataError
from tests.helpers import SHARED_DATA

DATA = SHARED_DATA



def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def _complete(root: Path) -> list[Pair]:
    images, masks = root / "images", root / "masks"
    return require_complete(pair_files(images, masks), images, masks)


@pytest.mark.shared_data
def test_ph2_jpg_png() -> None:
    pairs = _complete(DATA / "ph2")
    assert len(pairs) == 150
    assert [p.stem for p in pairs] == sorted(p.stem for p in pairs)
    for pair in pairs:
        assert pair.image.suffix == ".jpg" and pair.mask.suffix == ".png"
        assert pair.image.stem == pair.stem == pair.mask.stem


@pytest.mark.shared_data
def test_ham10000_mini() -> None:
    pairs = _complete(DATA / "ham10000-mini")
    assert [p.stem for p in pairs] == [
        "ISIC_0024340",
        "ISIC_0024355",
        "ISIC_0024357",
        "ISIC_0024377",
        "ISIC_0024383",
        "ISIC_0024384",
    ]


@pytest.mark.shared_data
def test_ph2_bmp_lesion_suffix() -> None:
    pairs = _complete(DATA / "formats" / "ph2-bmp")
    assert [(p.stem, p.image.name, p.mask.name) for p in pairs] == [
        ("IMD002", "IMD002.bmp", "IMD002_lesion.bmp"),
        ("IMD003", "IMD003.bmp", "IMD003_lesion.bmp"),
        ("IMD004", "IMD004.bmp", "IMD004_lesion.bmp"),
    ]


@pytest.mark.shared_data
def test_isic_segmentation_suffix(tmp_path: Path) -> None:
    src = DATA / "ham10000-mini"
    (tmp_path / "masks").mkdir()
    for mask in (src / "masks").glob("*.png"):
        shutil.copyfile(mask, tmp_path / "masks" / f"{mask.stem}_segmentation.png")
    pairing = pair_files(src / "images", tmp_path / "masks")
    pairs = require_complete(pairing, src / "images", tmp_path / "masks")
    assert len(pairs) == 6
    assert all(p.mask.name == f"{p.stem}_segmentation.png" for p in pairs)


def test_pairs_by_stem_not_position(tmp_path: Path) -> None:
    # mixed names and extensions: sorted listings would not line up by position
    _touch(tmp_path / "images", "c.jpg", "a.JPG", "b.png", "d.TIFF")
    _touch(tmp_path / "masks", "c_segmentation.png", "b.bmp", "a_lesion.bmp", "d.png")
    pairs = _complete(tmp_path)
    assert [(p.stem, p.image.name, p.mask.name) for p in pairs] == [
        ("a", "a.JPG", "a_lesion.bmp"),
        ("b", "b.png", "b.bmp"),
        ("c", "c.jpg", "c_segmentation.png"),
        ("d", "d.TIFF", "d.png"),
    ]


def test_ignores_hidden_and_non_image_files(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg", ".DS_Store", "._a.jpg", "notes.txt", "Thumbs.db")
    _touch(tmp_path / "masks", "a.png", ".hidden.png", "readme.md", "a.png~")
    (tmp_path / "images" / "sub.jpg").mkdir()  # a folder named like an image
    pairing = pair_files(tmp_path / "images", tmp_path / "masks")
    assert [p.stem for p in pairing.pairs] == ["a"]
    assert pairing.images_without_mask == [] and pairing.masks_without_image == []


def test_every_listed_extension_in_any_case(tmp_path: Path) -> None:
    names = [f"i{n}{ext.upper() if n % 2 else ext}" for n, ext in enumerate(IMAGE_EXTENSIONS)]
    _touch(tmp_path / "images", *names)
    _touch(tmp_path / "masks", *(f"i{n}.png" for n in range(len(names))))
    assert len(_complete(tmp_path)) == len(IMAGE_EXTENSIONS)


def test_image_without_mask_names_file(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg", "lonely_image.jpg")
    _touch(tmp_path / "masks", "a.png")
    pairing = pair_files(tmp_path / "images", tmp_path / "masks")
    assert [p.name for p in pairing.images_without_mask] == ["lonely_image.jpg"]
    with pytest.raises(DataError) as info:
        require_complete(pairing, tmp_path / "images", tmp_path / "masks")
    message = str(info.value)
    assert "lonely_image.jpg" in message and "1 image(s)" in message


def test_mask_without_image_names_file(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg")
    _touch(tmp_path / "masks", "a.png", "orphan_segmentation.png")
    with pytest.raises(DataError, match="orphan_segmentation.png") as info:
        _complete(tmp_path)
    assert "1 mask(s)" in str(info.value)


def test_leftovers_listing_is_capped(tmp_path: Path) -> None:
    _touch(tmp_path / "images", *(f"img{i:02d}.jpg" for i in range(15)))
    _touch(tmp_path / "masks")
    with pytest.raises(DataError, match="15 image") as info:
        _complete(tmp_path)
    assert "img09.jpg" in str(info.value) and "img10.jpg" not in str(info.value)
    assert "5 more" in str(info.value)


def test_two_images_with_one_stem(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg", "a.png")
    _touch(tmp_path / "masks", "a.png")
    with pytest.raises(DataError, match="a.jpg") as info:
        _complete(tmp_path)
    assert "a.png" in str(info.value)


def test_two_masks_for_one_image(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg")
    _touch(tmp_path / "masks", "a.png", "a_segmentation.png")
    with pytest.raises(DataError, match="two masks") as info:
        _complete(tmp_path)
    assert "a.png" in str(info.value) and "a_segmentation.png" in str(info.value)


def test_missing_folder_named(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "a.jpg")
    with pytest.raises(DataError, match="no_such_masks"):
        pair_files(tmp_path / "images", tmp_path / "no_such_masks")
    with pytest.raises(DataError, match="no_such_images"):
        pair_files(tmp_path / "no_such_images", tmp_path / "images")


def test_images_and_masks_in_one_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "all", "a.jpg", "a_segmentation.png", "b.jpg", "b_segmentation.png")
    pairs = require_complete(
        pair_files(tmp_path / "all", tmp_path / "all"), tmp_path / "all", tmp_path / "all"
    )
    assert [(p.image.name, p.mask.name) for p in pairs] == [
        ("a.jpg", "a_segmentation.png"),
        ("b.jpg", "b_segmentation.png"),
    ]


def test_custom_suffixes(tmp_path: Path) -> None:
    _touch(tmp_path / "images", "x.jpg")
    _touch(tmp_path / "masks", "x_mask.png")
    assert pair_files(tmp_path / "images", tmp_path / "masks").masks_without_image
    pairing = pair_files(tmp_path / "images", tmp_path / "masks", mask_suffixes=("_mask",))
    assert [p.mask.name for p in pairing.pairs] == ["x_mask.png"]


def test_empty_folders_give_empty_pairing(tmp_path: Path) -> None:
    _touch(tmp_path / "images")
    _touch(tmp_path / "masks")
    assert _complete(tmp_path) == []
