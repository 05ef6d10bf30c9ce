"""Mask decoding: colour maps, Pillow mode handling and colour -> class-index mapping.

Pure numpy + Pillow (no TensorFlow), so it is usable from data checks and tests.

A mask is read at its original size, upright (EXIF orientation applied, as for images), as
an (H, W, 3) uint8 RGB array (:func:`load_mask_rgb`: palettes expanded, greyscale and 1-bit
masks replicated to three channels, alpha dropped, 16-bit masks scaled to 8 bit), then every
colour is mapped to a class index with an ``rgb_map`` (:func:`decode_mask`). The class-index
map is what gets resized (NEAREST) later.
"""

from __future__ import annotations

import stat
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from flexunet.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Color",
    "MID_BAND",
    "MAX_MID_FRACTION",
    "apply_threshold",
    "class_fraction",
    "decode_mask",
    "decode_mask_array",
    "load_mask_rgb",
    "load_strict",
    "open_checked",
    "open_header",
    "parse_rgb_map",
    "read_rgb",
    "turns_sideways",
    "unmapped_colors",
    "upright",
]

Color = tuple[int, int, int]

#: Largest image (width * height) that is decoded; larger files are refused as possible
#: decompression bombs without being decoded.
DEFAULT_MAX_PIXELS = 64_000_000
#: The config keys that set that limit, named in the message that refuses a file.
MAX_PIXELS_KEYS = "data.max_pixels (infer.max_pixels for flexunet-infer)"
#: EXIF orientations that turn the image by 90 degrees (width and height swap).
_SIDEWAYS = frozenset({5, 6, 7, 8})

_TOLERANCE_HINT = (
    "if the mask was saved lossily (JPEG, resized with interpolation) set `mask.tolerance` "
    "(e.g. 40) to snap near colours to the nearest rgb_map colour; otherwise add the colour "
    "to `rgb_map` or fix the mask"
)


# --------------------------------------------------------------------------- rgb_map


def _parse_channel(text: str, key: object) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"rgb_map key {key!r}: {text!r} is not an integer; write colours as 'R,G,B' "
            f"(e.g. '255,255,255') or a single grey level 'G' (e.g. '255')"
        ) from None
    if not 0 <= value <= 255:
        raise ConfigError(f"rgb_map key {key!r}: channel value {value} is outside 0..255")
    return value


def _parse_key(key: object) -> Color:
    if isinstance(key, bool):
        raise ConfigError(f"rgb_map key {key!r}: expected 'R,G,B' or a grey level 'G'")
    if isinstance(key, int):  # YAML turns an unquoted `255:` into an int
        grey = _parse_channel(str(key), key)
        return (grey, grey, grey)
    if isinstance(key, (tuple, list)):
        parts = [str(v) for v in key]
    elif isinstance(key, str):
        parts = key.split(",")
    else:
        raise ConfigError(
            f"rgb_map key {key!r}: expected a string 'R,G,B' or a grey level 'G', "
            f"got {type(key).__name__}"
        )
    if len(parts) == 1:
        grey = _parse_channel(parts[0], key)
        return (grey, grey, grey)
    if len(parts) != 3:
        raise ConfigError(
            f"rgb_map key {key!r}: expected 3 comma-separated channels 'R,G,B' "
            f"or a single grey level 'G', got {len(parts)} values"
        )
    r, g, b = (_parse_channel(p, key) for p in parts)
    return (r, g, b)


def parse_rgb_map(rgb_map: Mapping[str, int]) -> dict[Color, int]:
    """Parse a config ``rgb_map`` ({"R,G,B": class_index}) into {(r, g, b): class_index}.

    A key with a single value ``"G"`` (or an int, as YAML gives for an unquoted ``255:``)
    means the grey colour (G, G, G). Class indices must be integers in 0..255. Already
    parsed tuple keys are accepted as well. Raises :class:`ConfigError` naming the bad key.
    """
    if not isinstance(rgb_map, Mapping):
        raise ConfigError(
            f"rgb_map must be a mapping {{'R,G,B': class_index}}, got {type(rgb_map).__name__}"
        )
    if not rgb_map:
        raise ConfigError("rgb_map is empty: map at least one mask colour to a class index")
    parsed: dict[Color, int] = {}
    origin: dict[Color, object] = {}
    for key, value in rgb_map.items():
        color = _parse_key(key)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"rgb_map key {key!r}: class index {value!r} is not an integer")
        index = int(value)
        if not 0 <= index <= 255:
            raise ConfigError(f"rgb_map key {key!r}: class index {index} is outside 0..255")
        if color in parsed:
            raise ConfigError(
                f"rgb_map key {key!r}: colour {color} is already mapped by key {origin[color]!r}"
            )
        parsed[color] = index
        origin[color] = key
    return parsed


def _as_color_map(rgb_map: Mapping[object, int]) -> dict[Color, int]:
    """Accept an already parsed {(r,g,b): cls} map or a raw config map {"R,G,B": cls}."""
    return parse_rgb_map(rgb_map)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading files

_truncation_lock = threading.Lock()


@contextmanager
def _strict_truncation() -> Iterator[None]:
    """Make Pillow raise on truncated files even if someone set LOAD_TRUNCATED_IMAGES."""
    with _truncation_lock:
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _bomb_message(
    path: Path, kind: str, size: tuple[int, int] | None, max_pixels: int, detail: str = ""
) -> str:
    if size:
        dims = f"is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels"
    else:
        dims = f"has too many pixels ({detail})" if detail else "has too many pixels"
    return (
        f"{path}: {kind} {dims}, over the limit of {max_pixels:,} pixels; refused as a "
        f"possible decompression bomb without decoding it. Downscale the file, or raise "
        f"{MAX_PIXELS_KEYS} if it is genuine"
    )


def _require_regular(path: Path, kind: str) -> None:
    """Raise :class:`DataError` unless ``path`` is a regular file (or a link to one): a
    folder named ``x.jpg``, a link loop or a FIFO would otherwise fail obscurely or hang."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file does not exist") from None
    except OSError as exc:  # a symbolic link loop, a permission problem, ...
        raise DataError(f"{path}: cannot open {kind} ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: {kind} is a folder, not an image file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: {kind} is not a regular file (a device, pipe or socket)")


def open_header(
    path: str | Path, kind: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Open ``path`` with Pillow, reading only the header (nothing is decoded).

    Raises :class:`DataError` naming the file when it is missing, not an image, or larger
    than ``max_pixels`` (or Pillow's own ``MAX_IMAGE_PIXELS``): a possible decompression
    bomb is refused before any pixel is decoded. The caller closes the returned image.
    ``img.size`` is the stored size; see :func:`turns_sideways` for the size a viewer shows.
    """
    path = Path(path)
    _require_regular(path, kind)
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own MAX_IMAGE_PIXELS: a refusal unless max_pixels was
            # raised above it (Pillow still refuses twice its limit, whatever max_pixels says)
            pillow_limit = Image.MAX_IMAGE_PIXELS or max_pixels
            action = "ignore" if max_pixels > pillow_limit else "error"
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_bomb_message(path, kind, None, max_pixels, str(exc))) from None
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file does not exist") from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: {kind} is not a readable image (unknown or corrupt format); "
            f"re-export it as PNG/JPEG or remove it"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot open {kind} ({exc}); re-export it or remove it") from None
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise DataError(_bomb_message(path, kind, (width, height), max_pixels))
    if width <= 0 or height <= 0:
        img.close()
        raise DataError(f"{path}: {kind} has an empty size {width}x{height}")
    return img


def load_strict(
    img: Image.Image, path: str | Path, kind: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> None:
    """Decode an image opened by :func:`open_header`; truncated or corrupt data raises
    :class:`DataError` naming the file (``LOAD_TRUNCATED_IMAGES`` is forced off meanwhile)."""
    path = Path(path)
    try:
        with _strict_truncation(), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_bomb_message(path, kind, None, max_pixels, str(exc))) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        hint = "truncated" if "truncat" in str(exc).lower() else "corrupt"
        raise DataError(
            f"{path}: {kind} is {hint} and cannot be decoded ({exc}); "
            f"re-download or re-export it, or remove the pair"
        ) from None


def turns_sideways(img: Image.Image) -> bool:
    """Whether the EXIF orientation of ``img`` turns it by 90 degrees, so that it shows
    ``height x width`` upright (reading a PNG's EXIF decodes the PNG: call it after
    :func:`load_strict` for other formats than JPEG)."""
    return img.getexif().get(ExifTags.Base.Orientation, 1) in _SIDEWAYS


def upright(img: Image.Image, path: str | Path, kind: str = "image") -> None:
    """Turn a decoded image in place as its EXIF orientation says, so its pixels are in the
    order a viewer shows them (no-op without an orientation tag)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot apply the EXIF orientation of {kind} ({exc})") from None


def open_checked(
    path: str | Path, kind: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Open ``path`` with Pillow, fully decoded, or raise :class:`DataError` naming the file.

    The header is read first: a file over ``max_pixels`` (or over Pillow's own limit) is
    refused without decoding it. Truncated files raise (``LOAD_TRUNCATED_IMAGES`` is
    forced off while decoding). Only the first frame of multi-frame files is used. The
    image is turned upright by its EXIF orientation (:func:`upright`).
    """
    img = open_header(path, kind, max_pixels)
    try:
        load_strict(img, path, kind, max_pixels)
        upright(img, path, kind)
    except BaseException:
        img.close()
        raise
    return img


def _scale_16bit(arr: np.ndarray) -> np.ndarray:
    """Integer-valued image -> uint8. Values already within 0..255 are kept (label maps
    stored in a 16-bit container), otherwise 0..65535 is scaled to 0..255."""
    if arr.size == 0:
        return arr.astype(np.uint8)
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 255:
        return arr.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return np.rint(arr.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    raise ValueError(f"pixel values {lo}..{hi} do not fit 16 bit")


def _to_plane(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W) uint8 for grey content or (H, W, 3) uint8 RGB.

    Palettes are expanded through the palette (never the raw index), alpha is dropped and
    16-bit values are scaled to 8 bit.
    """
    mode = img.mode
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[:, :, 0])
    if mode in ("P", "PA"):
        index = np.asarray(img.convert("P") if mode == "PA" else img, dtype=np.uint8)
        palette = img.getpalette("RGB") if mode == "P" else img.convert("P").getpalette("RGB")
        lut = np.zeros((256, 3), dtype=np.uint8)
        if palette:
            entries = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
            lut[: len(entries)] = entries
        else:  # no palette: Pillow treats the index as grey
            lut[:] = np.arange(256, dtype=np.uint8)[:, None]
        used = np.flatnonzero(np.bincount(index.ravel(), minlength=256))
        if np.all((lut[used, 0] == lut[used, 1]) & (lut[used, 1] == lut[used, 2])):
            return lut[:, 0][index]
        return lut[index]
    if mode.startswith("I;16") or mode == "I":
        return _scale_16bit(np.asarray(img).astype(np.int64))
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
            raise ValueError("floating-point image with non-integer values")
        return _scale_16bit(values.astype(np.int64))
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("RGBA", "RGBX", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return np.ascontiguousarray(rgba[:, :, :3])
    return np.asarray(img.convert("RGB"), dtype=np.uint8)  # CMYK, YCbCr, LAB, HSV, ...


def _as_rgb(plane: np.ndarray) -> np.ndarray:
    if plane.ndim == 2:
        return np.repeat(plane[:, :, None], 3, axis=2)
    return np.ascontiguousarray(plane)


def _read_plane(path: Path, kind: str, max_pixels: int) -> np.ndarray:
    img = open_checked(path, kind, max_pixels)
    try:
        return _to_plane(img)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot convert {kind} of mode {img.mode!r} to RGB ({exc}); "
            f"re-export it as an 8-bit PNG"
        ) from None
    finally:
        img.close()


def read_rgb(
    path: str | Path, kind: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read any supported file as (H, W, 3) uint8 RGB, raising :class:`DataError` naming it."""
    return _as_rgb(_read_plane(Path(path), kind, max_pixels))


def load_mask_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask file as an (H, W, 3) uint8 RGB array at its original size.

    Palettes are expanded (HAM10000 masks are palette PNGs whose index 0 is *white*: the raw
    index would invert the lesion), greyscale ``L`` and 1-bit ``1`` (PH2 BMP) masks are
    replicated to three channels, alpha is dropped, 16-bit masks are scaled to 8 bit (unless
    their values already fit 0..255). Raises :class:`DataError` naming unreadable files.
    """
    return read_rgb(path, "mask", max_pixels)


# --------------------------------------------------------------------------- decoding


def _grey_or_rgb(rgb: np.ndarray) -> np.ndarray:
    """(H, W) grey, or (H, W, 3) RGB reduced to (H, W) when all three channels are equal."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("mask values must be within 0..255")
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) grey mask, got shape {arr.shape}")
    r, g, b = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    if np.array_equal(r, g) and np.array_equal(g, b):
        return r
    return arr


class _Colors:
    """Unique colours of a mask as int32 codes r<<16|g<<8|b, with pixel counts."""

    def __init__(self, plane: np.ndarray) -> None:
        self.shape = plane.shape[:2]
        self.size = int(plane.shape[0] * plane.shape[1])
        self._grey = plane.ndim == 2
        self._high: np.ndarray | None = None
        if self._grey:
            self._plane = plane
            lo, hi = int(plane.min()), int(plane.max())
            high = plane == hi
            if lo == hi:  # one grey level
                values = np.array([lo])
                counts = np.array([self.size])
            elif np.logical_or(high, plane == lo).all():  # binary mask: the common case
                n_high = int(np.count_nonzero(high))
                values = np.array([lo, hi])
                counts = np.array([self.size - n_high, n_high])
                self._high = high
            else:
                counts = np.bincount(plane.ravel(), minlength=256)
                values = np.flatnonzero(counts)
                counts = counts[values]
            self._values = values
            self.codes = (values * 0x010101).astype(np.int32)
            self.counts = counts
        else:
            flat = (
                (plane[:, :, 0].astype(np.int32) << 16)
                | (plane[:, :, 1].astype(np.int32) << 8)
                | plane[:, :, 2].astype(np.int32)
            ).ravel()
            uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
            self._inverse = inverse.ravel()
            self.codes = uniq.astype(np.int32)
            self.counts = counts

    def take(self, classes: np.ndarray) -> np.ndarray:
        """(H, W) uint8 array of ``classes[colour of each pixel]``."""
        if self._high is not None:
            return np.where(self._high, classes[1], classes[0]).astype(np.uint8)
        if self._grey:
            lut = np.zeros(256, dtype=np.uint8)
            lut[self._values] = classes
            return np.take(lut, self._plane)
        return classes[self._inverse].reshape(self.shape)


def _decode_codes(codes: np.ndarray) -> np.ndarray:
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1)


def _fmt_color(code: int) -> str:
    return f"({(code >> 16) & 255},{(code >> 8) & 255},{code & 255})"


def _assign(
    uniq: np.ndarray, cmap: dict[Color, int], tolerance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class index per unique colour code.

    Returns (classes, ok, distance): ``ok`` marks colours that were mapped, ``distance`` is
    the Chebyshev distance to the nearest map colour (-1 where the nearest is ambiguous).
    """
    keys = np.array([(r << 16) | (g << 8) | b for (r, g, b) in cmap], dtype=np.int32)
    values = np.array(list(cmap.values()), dtype=np.uint8)
    classes = np.zeros(uniq.shape, dtype=np.uint8)
    distance = np.zeros(uniq.shape, dtype=np.int64)
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], uniq), 0, keys.size - 1)
    exact = keys[order][pos] == uniq
    classes[exact] = values[order][pos[exact]]
    ok = exact.copy()
    missing = np.flatnonzero(~exact)
    if missing.size:
        cols = _decode_codes(uniq[missing]).astype(np.int64)  # (U, 3)
        palette = _decode_codes(keys).astype(np.int64)  # (K, 3)
        dist = np.abs(cols[:, None, :] - palette[None, :, :]).max(axis=2)  # (U, K)
        nearest = dist.argmin(axis=1)
        best = dist[np.arange(missing.size), nearest]
        # ambiguous: another map colour of a *different* class is equally near
        tied = (dist == best[:, None]) & (values[None, :] != values[nearest][:, None])
        ambiguous = tied.any(axis=1)
        distance[missing] = np.where(ambiguous, -1, best)
        if tolerance > 0:
            snap = (best <= tolerance) & ~ambiguous
            classes[missing[snap]] = values[nearest[snap]]
            ok[missing[snap]] = True
    return classes, ok, distance


#: Grey levels "near" neither black nor white: farther than 63 from both 0 and 255.
MID_BAND = (64, 191)
#: A binary mask whose edges were interpolated (resized) has a thin band of such greys along
#: the lesion border (ISIC 2017 at 800x500: at most 0.45 % of the pixels); more than this
#: fraction of the pixels in :data:`MID_BAND` means the file is not a black/white mask.
MAX_MID_FRACTION = 0.05


def _check_threshold(threshold: int | None, cmap: Mapping[Color, int]) -> int | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
        raise ConfigError(f"mask.threshold must be an integer 0..254 or null, got {threshold!r}")
    if not 0 <= int(threshold) <= 254:
        raise ConfigError(f"mask.threshold must be within 0..254 (or null), got {threshold}")
    if (0, 0, 0) not in cmap or (255, 255, 255) not in cmap:
        raise ConfigError(
            f"mask.threshold={threshold} binarises grey masks to black and white, but rgb_map "
            "does not map both '0,0,0' and '255,255,255'; set mask.threshold=null"
        )
    return int(threshold)


def apply_threshold(
    plane: np.ndarray, threshold: int | None, source: str | Path = "<array>"
) -> np.ndarray:
    """A grey (H, W) mask binarised: values above ``threshold`` become 255, others 0.

    Binary masks that were resized with interpolation have grey edges; thresholding them
    is what the ISIC scorer does (> 128). A mask with more than :data:`MAX_MID_FRACTION` of
    its pixels in :data:`MID_BAND` (near neither black nor white) is no such mask (a
    probability map, a photo, a multi-class label map) and raises :class:`DataError` naming
    the file. RGB planes (not grey) and ``threshold=None`` are returned unchanged.
    """
    if threshold is None or plane.ndim != 2:
        return plane
    lo, hi = MID_BAND
    mid = float(np.count_nonzero((plane >= lo) & (plane <= hi))) / max(1, plane.size)
    if mid > MAX_MID_FRACTION:
        raise DataError(
            f"{source}: {mid:.1%} of the mask's pixels are mid-grey ({lo}..{hi}), more than "
            f"the {MAX_MID_FRACTION:.0%} that interpolated lesion edges leave, so it is not a "
            f"black/white mask. Fix: give the lesion mask made for this image (0 = skin, 255 = "
            f"lesion); for a label map with more classes set mask.threshold=null and list "
            f"its colours in mask.rgb_map"
        )
    return np.where(plane > threshold, 255, 0).astype(np.uint8)


def _check_tolerance(tolerance: int) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)):
        raise ConfigError(f"mask.tolerance must be an integer 0..255, got {tolerance!r}")
    if not 0 <= int(tolerance) <= 255:
        raise ConfigError(f"mask.tolerance must be within 0..255, got {tolerance}")
    return int(tolerance)


def _bad_order(colors: _Colors, ok: np.ndarray) -> np.ndarray:
    bad = np.flatnonzero(~ok)
    return bad[np.lexsort((colors.codes[bad], -colors.counts[bad]))]


def unmapped_colors(
    rgb: np.ndarray,
    rgb_map: Mapping[object, int],
    tolerance: int = 0,
    threshold: int | None = None,
    source: str | Path = "<array>",
) -> list[tuple[Color, int]]:
    """Colours of an (H, W, 3) RGB or (H, W) grey mask that ``rgb_map`` (with ``tolerance``,
    after :func:`apply_threshold`) cannot map, as [((r, g, b), pixel_count)], most frequent
    first."""
    cmap = _as_color_map(rgb_map)
    tolerance = _check_tolerance(tolerance)
    threshold = _check_threshold(threshold, cmap)
    colors = _Colors(apply_threshold(_grey_or_rgb(rgb), threshold, source))
    _, ok, _ = _assign(colors.codes, cmap, tolerance)
    result: list[tuple[Color, int]] = []
    for i in _bad_order(colors, ok):
        code = int(colors.codes[i])
        result.append((((code >> 16) & 255, (code >> 8) & 255, code & 255), int(colors.counts[i])))
    return result


def decode_mask_array(
    rgb: np.ndarray,
    rgb_map: Mapping[object, int],
    tolerance: int = 0,
    source: str | Path = "<array>",
    threshold: int | None = None,
) -> np.ndarray:
    """Map an (H, W, 3) RGB (or (H, W) grey) mask to (H, W) uint8 class indices.

    See :func:`decode_mask`; ``source`` names the mask in error messages.
    """
    cmap = _as_color_map(rgb_map)
    tolerance = _check_tolerance(tolerance)
    threshold = _check_threshold(threshold, cmap)
    colors = _Colors(apply_threshold(_grey_or_rgb(rgb), threshold, source))
    classes, ok, distance = _assign(colors.codes, cmap, tolerance)
    if not ok.all():
        bad = _bad_order(colors, ok)
        shown = []
        for i in bad[:5]:
            d = int(distance[i])
            near = "equally near two classes" if d < 0 else f"distance {d}"
            color, count = _fmt_color(int(colors.codes[i])), int(colors.counts[i])
            shown.append(f"{color} x {count:,} px ({near})")
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        n_px = int(colors.counts[bad].sum())
        known = ", ".join(
            _fmt_color(k) for k in sorted((r << 16) | (g << 8) | b for (r, g, b) in cmap)
        )
        if tolerance > 0:
            reason = f"farther than mask.tolerance={tolerance} from every rgb_map colour"
            fix = "raise `mask.tolerance`, add the colours to `rgb_map`, or fix the mask"
        else:
            reason = "not in rgb_map"
            fix = _TOLERANCE_HINT
        raise DataError(
            f"{source}: mask has {bad.size} colour(s) {reason} ({n_px:,} of {colors.size:,} "
            f"pixels): {'; '.join(shown)}{more}. rgb_map colours are {known}. Fix: {fix}"
        )
    return colors.take(classes)


def decode_mask(
    path: str | Path,
    rgb_map: Mapping[object, int],
    tolerance: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: int | None = None,
) -> np.ndarray:
    """Read a mask file and map its colours to an (H, W) uint8 class-index array.

    With ``threshold`` (``mask.threshold``, for black/white masks) a grey mask is first
    binarised by :func:`apply_threshold`: interpolated grey edges are accepted, a mask that
    is mostly mid-grey is an error.

    ``rgb_map`` is {(r, g, b): class_index} (a raw config map {"R,G,B": class} is parsed).
    With ``tolerance == 0`` every colour must be in the map, otherwise :class:`DataError`
    names the file, the unknown colours (up to 5, most frequent first) and their pixel
    counts. With ``tolerance > 0`` a colour is snapped to the nearest map colour when its
    Chebyshev (max-channel) distance is at most ``tolerance`` (and no map colour of another
    class is equally near); farther colours still raise.
    """
    plane = _read_plane(Path(path), "mask", max_pixels)
    return decode_mask_array(plane, rgb_map, tolerance, source=path, threshold=threshold)


def class_fraction(mask: np.ndarray, cls: int = 1) -> float:
    """Fraction of pixels of a class-index mask equal to ``cls`` (0.0 for an empty mask)."""
    mask = np.asarray(mask)
    if mask.size == 0:
        return 0.0
    return float(np.count_nonzero(mask == cls)) / float(mask.size)
