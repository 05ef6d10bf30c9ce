"""Mask decoding on the real sample data (read-only) and on small synthetic masks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexunet.data.masks import (
    class_fraction,
    decode_mask,
    decode_mask_array,
    load_mask_rgb,
    parse_rgb_map,
    unmapped_colors,
)
from flexunet.errors import ConfigError, DataError
from tests.helpers import SHARED_DATA

DATA = SHARED_DATA
BINARY = {"0,0,0": 0, "255,255,255": 1}



# --------------------------------------------------------------------------- parse_rgb_map


def test_parse_rgb_map_rgb_grey_and_int_keys() -> None:
    parsed = parse_rgb_map({"0,0,0": 0, " 255 , 0 ,0 ": 1, "128": 2, 64: 3})
    assert parsed == {(0, 0, 0): 0, (255, 0, 0): 1, (128, 128, 128): 2, (64, 64, 64): 3}


@pytest.mark.parametrize("key", ["1,2", "a,b,c", "256", "0,0,0,0", "-1,0,0", ""])
def test_parse_rgb_map_bad_key_names_it(key: str) -> None:
    with pytest.raises(ConfigError, match="rgb_map key"):
        parse_rgb_map({key: 1})
    with pytest.raises(ConfigError) as info:
        parse_rgb_map({key: 1})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("value", [-1, 256, "1", 1.5, True, None])
def test_parse_rgb_map_bad_class_index_names_key(value: object) -> None:
    with pytest.raises(ConfigError, match="'7,7,7'"):
        parse_rgb_map({"7,7,7": value})  # type: ignore[dict-item]


def test_parse_rgb_map_duplicate_colour_and_empty() -> None:
    with pytest.raises(ConfigError, match="already mapped"):
        parse_rgb_map({"255": 1, "255,255,255": 2})
    with pytest.raises(ConfigError, match="empty"):
        parse_rgb_map({})


# --------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_ph2_png_masks_all_decode_to_binary() -> None:
    masks = sorted((DATA / "ph2" / "masks").glob("*.png"))
    assert len(masks) == 150
    for path in masks:
        mask = decode_mask(path, parse_rgb_map(BINARY))
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert set(np.unique(mask)) <= {0, 1}
        assert 0.0 < class_fraction(mask) < 1.0, path.name


@pytest.mark.shared_data
def test_ham10000_palette_mask_is_not_inverted() -> None:
    path = DATA / "ham10000-mini" / "masks" / "ISIC_0024340.png"
    with Image.open(path) as img:
        assert img.mode == "P"
        raw_index = np.asarray(img)
    assert raw_index[0, 0] == 255  # the raw palette index of the (skin) corner...
    rgb = load_mask_rgb(path)
    assert rgb.shape == (450, 600, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # ...is black once the palette is expanded
    frac = class_fraction(decode_mask(path, BINARY))
    assert 0.15 < frac < 0.30  # lesion is the minority class (0.78 if inverted)


@pytest.mark.shared_data
def test_ham10000_all_masks_lesion_minority() -> None:
    for path in sorted((DATA / "ham10000-mini" / "masks").glob("*.png")):
        assert 0.0 < class_fraction(decode_mask(path, BINARY)) < 0.5, path.name


@pytest.mark.shared_data
def test_ph2_bmp_one_bit_and_rgb_masks() -> None:
    folder = DATA / "formats" / "ph2-bmp" / "masks"
    modes = {}
    for p in folder.glob("*.bmp"):
        with Image.open(p) as img:
            modes[p.stem] = img.mode
    assert modes == {"IMD002_lesion": "RGB", "IMD003_lesion": "1", "IMD004_lesion": "1"}
    for path in sorted(folder.glob("*.bmp")):
        mask = decode_mask(path, BINARY)
        assert set(np.unique(mask)) == {0, 1}
        stem = path.stem.removesuffix("_lesion")
        reference = decode_mask(DATA / "ph2" / "masks" / f"{stem}.png", BINARY)
        assert abs(class_fraction(mask) - class_fraction(reference)) < 0.02, path.name


@pytest.mark.shared_data
def test_decode_is_same_for_raw_or_parsed_map() -> None:
    path = DATA / "ph2" / "masks" / "IMD002.png"
    np.testing.assert_array_equal(
        decode_mask(path, BINARY), decode_mask(path, parse_rgb_map({"0": 0, "255": 1}))
    )


# --------------------------------------------------------------------------- colours


def _save_rgb(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb, "RGB").save(path)
    return path


def test_multiclass_rgb_map(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.uint8)
    labels[2:8, 3:12] = 1
    labels[10:18, 5:25] = 2
    labels[0, :] = 3
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [10, 200, 10]], np.uint8)
    path = _save_rgb(tmp_path / "multi.png", palette[labels])
    rgb_map = {"0,0,0": 0, "255,0,0": 1, "0,128,255": 2, "10,200,10": 3}
    np.testing.assert_array_equal(decode_mask(path, rgb_map), labels)
    assert class_fraction(labels, 2) == pytest.approx(8 * 20 / 600)


def test_unknown_colour_names_file_colour_and_count(tmp_path: Path) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[:3] = (200, 10, 10)  # 30 px
    rgb[9, 9] = (1, 2, 3)  # 1 px
    path = _save_rgb(tmp_path / "odd_colours.png", rgb)
    with pytest.raises(DataError) as info:
        decode_mask(path, BINARY)
    message = str(info.value)
    assert "odd_colours.png" in message
    assert "(200,10,10) x 30 px" in message and "(1,2,3) x 1 px" in message
    assert message.index("(200,10,10)") < message.index("(1,2,3)")  # most frequent first
    assert "mask.tolerance" in message


def test_unknown_colours_listed_up_to_five(tmp_path: Path) -> None:
    rgb = np.zeros((1, 8, 3), np.uint8)
    rgb[0, :7, 0] = np.arange(1, 8) * 30
    with pytest.raises(DataError, match="and 2 more"):
        decode_mask_array(rgb, BINARY, source="x.png")
    colours = unmapped_colors(rgb, BINARY)
    assert len(colours) == 7 and all(n == 1 for _, n in colours)


@pytest.mark.shared_data
def test_jpeg_mask_needs_tolerance(tmp_path: Path) -> None:
    source = DATA / "ph2" / "masks" / "IMD003.png"
    lossy = tmp_path / "IMD003.jpg"
    with Image.open(source) as img:
        img.convert("RGB").save(lossy, quality=90)
    with pytest.raises(DataError, match="mask.tolerance") as info:
        decode_mask(lossy, BINARY)
    assert "IMD003.jpg" in str(info.value)
    mask = decode_mask(lossy, BINARY, tolerance=40)
    assert set(np.unique(mask)) == {0, 1}
    reference = decode_mask(source, BINARY)
    assert np.mean(mask != reference) < 0.01


def test_tolerance_still_rejects_far_colours(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (250, 255, 245)  # snaps to white
    rgb[1, 1] = (128, 128, 128)  # 127/128 away from both: not snapped
    with pytest.raises(DataError, match="farther than mask.tolerance=40"):
        decode_mask_array(rgb, BINARY, tolerance=40)
    rgb[1, 1] = (0, 30, 0)
    out = decode_mask_array(rgb, BINARY, tolerance=40)
    assert out[0, 0] == 1 and out[1, 1] == 0 and out.sum() == 1
    with pytest.raises(ConfigError):
        decode_mask_array(rgb, BINARY, tolerance=-1)


# --------------------------------------------------------------------------- modes


def test_modes_decode_the_same(tmp_path: Path) -> None:
    labels = np.zeros((12, 16), np.uint8)
    labels[3:9, 4:10] = 1
    grey = labels * 255
    files = {}
    files["L"] = tmp_path / "l.png"
    Image.fromarray(grey, "L").save(files["L"])
    files["1"] = tmp_path / "one.bmp"
    Image.fromarray(grey, "L").convert("1").save(files["1"])
    files["LA"] = tmp_path / "la.png"
    Image.fromarray(np.dstack([grey, np.full_like(grey, 7)]), "LA").save(files["LA"])
    files["RGBA"] = tmp_path / "rgba.png"
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 0)])
    Image.fromarray(rgba, "RGBA").save(files["RGBA"])
    files["I;16"] = tmp_path / "i16.png"
    Image.fromarray(labels.astype(np.uint16) * 65535).save(files["I;16"])
    files["P"] = tmp_path / "p.png"  # palette with index 0 = white, like HAM10000
    pal = Image.fromarray(np.where(labels == 1, 1, 0).astype(np.uint8), "P")
    pal.putpalette([255, 255, 255, 0, 0, 0] + [0, 0, 0] * 254)
    pal.save(files["P"])
    expected = {k: labels for k in files}
    expected["P"] = 1 - labels  # index 1 (the labelled area) is black = class 0
    for mode, path in files.items():
        rgb = load_mask_rgb(path)
        assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8, mode
        np.testing.assert_array_equal(decode_mask(path, BINARY), expected[mode], err_msg=mode)


def test_unreadable_mask_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken_mask.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken_mask.png"):
        decode_mask(path, BINARY)
    with pytest.raises(DataError, match="does not exist"):
        load_mask_rgb(tmp_path / "missing.png")


@pytest.mark.shared_data
def test_decode_segmentation_named_copy(tmp_path: Path) -> None:
    target = tmp_path / "ISIC_0024340_segmentation.png"
    shutil.copyfile(DATA / "ham10000-mini" / "masks" / "ISIC_0024340.png", target)
    assert 0.15 < class_fraction(decode_mask(target, BINARY)) < 0.30


def test_class_fraction() -> None:
    mask = np.array([[0, 1], [1, 2]], np.uint8)
    assert class_fraction(mask) == 0.5
    assert class_fraction(mask, 2) == 0.25
    assert class_fraction(np.zeros((0, 0), np.uint8)) == 0.0


# --------------------------------------------------------------------------- mask.threshold


def _grey_edged_mask(path: Path, mid_rows: int) -> Path:
    """A 40x40 grey mask: a lesion of 255, edges of interpolated grey (100, 160 and 200:
    1.5 % of the pixels in the mid band), and ``mid_rows`` rows of mid grey 128."""
    mask = np.zeros((40, 40), np.uint8)
    mask[6:14, 4:16] = 255
    mask[5, 4:16], mask[14, 4:16], mask[6:14, 3] = 100, 160, 200
    mask[40 - mid_rows :, :] = 128
    Image.fromarray(mask).save(path)
    return path


def test_threshold_binarises_grey_edges(tmp_path: Path) -> None:
    path = _grey_edged_mask(tmp_path / "edges.png", mid_rows=0)
    with pytest.raises(DataError, match="not in rgb_map"):
        decode_mask(path, BINARY)  # exact colours: the grey edge is refused
    classes = decode_mask(path, BINARY, threshold=128)
    expected = np.zeros((40, 40), np.uint8)
    expected[6:14, 4:16] = 1
    expected[14, 4:16] = 1  # 160 > 128
    expected[6:14, 3] = 1  # 200 > 128; 100 is skin
    np.testing.assert_array_equal(classes, expected)
    assert unmapped_colors(np.asarray(Image.open(path)), BINARY, threshold=128) == []


def test_threshold_still_refuses_a_mid_grey_mask(tmp_path: Path) -> None:
    # 4 rows of 128 plus the 24 edge pixels of 100 and 160: 11.5 % of the pixels in 64..191
    path = _grey_edged_mask(tmp_path / "mid.png", mid_rows=4)
    with pytest.raises(DataError, match=r"mid\.png: 11\.5% of the mask's pixels are mid-grey") as e:
        decode_mask(path, BINARY, threshold=128)
    assert "mask.threshold=null" in str(e.value) and "0 = skin, 255 = lesion" in str(e.value)
    with pytest.raises(ConfigError, match="does not map both"):
        decode_mask(path, {"0,0,0": 0, "128,128,128": 1}, threshold=128)


@pytest.mark.shared_data
def test_isic2017_masks_decode_with_the_default_threshold() -> None:
    path = DATA / "isic2017" / "masks" / "ISIC_0014794_segmentation.png"  # the greyest edge
    with pytest.raises(DataError, match="not in rgb_map"):
        decode_mask(path, BINARY)
    classes = decode_mask(path, BINARY, threshold=128)
    grey = np.asarray(Image.open(path).convert("L"))
    np.testing.assert_array_equal(classes, grey > 128)
