"""Synthetic dermoscopy-like images with exact lesion masks.

Why: the real skin-lesion data sets (ISIC and friends) need a licence click-through and several
gigabytes, so tests, the quick-start and CI smoke runs train on a small generated stand-in
instead.  The images are made to exercise the same pipeline (RGB JPEG images, 8-bit PNG masks,
matching file stems) and to be learnable but not trivial, so a model that "trains" on them says
something about the code path, and a model that does nothing is visibly worse than one that
learns.

What each sample contains (see :func:`render_sample`):

* a skin-toned background whose hue and brightness vary per image, with low-frequency mottling,
  a gentle illumination gradient and fine sensor noise;
* sometimes the dark circular vignette at the corners that contact dermoscopes leave;
* exactly one irregular pigmented lesion: an ellipse whose radius is perturbed by a few random
  Fourier harmonics plus a little boundary jitter, covering about 5 % to 45 % of the image,
  anywhere in the frame (occasionally cut by the border).  Its colour is brown, dark brown,
  reddish brown or bluish grey, with darker/lighter patches, dots (globules), a radial shading
  trend and a soft edge of varying width; some lesions have low contrast against the skin;
* with probability ``hair_probability``, a few dark, thin (1-2 px), curved hairs that cross the
  skin and the lesion.  Hairs are *not* part of the mask, as in real annotations.

Together, vignettes, hairs, dark patches and low-contrast lesions make sure that one global
grey-level threshold does not segment the lesions well, while the shape and colour cues stay
clear enough for a small U-Net to learn.

:func:`generate_synthetic` writes ``images/synth_00000.jpg`` (RGB JPEG, quality 92) and
``masks/synth_00000.png`` (8-bit greyscale, 0 = skin, 255 = lesion) plus a ``manifest.json``.
Image ``i`` depends only on ``(seed, i)`` and the size/hair parameters, never on ``count``, and
the same arguments give byte-identical files (for a given Pillow/libjpeg build).  Only numpy and
Pillow are used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from flexunet.errors import ConfigError, DataError
from flexunet.progress import progress

__all__ = ["generate_synthetic", "render_sample", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.json"
_FORMAT_VERSION = 1
_GENERATOR = "flexunet.data.synthetic"
_JPEG_QUALITY = 92
_IMAGE_DIR = "images"
_MASK_DIR = "masks"

# Skin base colours (RGB): light pink, pink, tan, darker tan.
_SKIN_TONES = np.array(
    [[238, 196, 186], [226, 172, 160], [214, 160, 128], [184, 128, 100]], dtype=np.float32
)
# Lesion pigment colours (RGB): light brown, brown, dark brown, reddish brown, bluish grey.
_LESION_COLOURS = np.array(
    [[165, 105, 68], [125, 76, 45], [80, 48, 32], [150, 82, 64], [100, 102, 122]],
    dtype=np.float32,
)
_DARK_PIGMENT = np.array([[60, 38, 30], [52, 50, 66], [90, 56, 44]], dtype=np.float32)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 pixel coordinate grids (yy, xx), cached per image size."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: float) -> np.ndarray:
    """Low-frequency noise (about unit variance): a coarse Gaussian grid upsampled bicubically."""
    gh = max(2, int(round(cells * height / max(height, width))) + 2)
    gw = max(2, int(round(cells * width / max(height, width))) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    up = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32)


def _render_skin(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Skin-toned background, HxWx3 float32 in 0..255 units."""
    weights = rng.dirichlet(np.full(len(_SKIN_TONES), 0.6))
    base = weights @ _SKIN_TONES
    base = base * rng.uniform(0.85, 1.07) + rng.normal(0.0, 6.0, size=3)

    skin = np.broadcast_to(base, (height, width, 3)).astype(np.float32)
    # Mottling: broad brightness blotches, reddish (erythema-like) blotches and a finer
    # skin-surface texture.
    bright = _smooth_noise(rng, height, width, rng.uniform(2, 5)) * rng.uniform(2.0, 6.0)
    red = _smooth_noise(rng, height, width, rng.uniform(3, 8)) * rng.uniform(1.5, 5.0)
    fine = _smooth_noise(rng, height, width, rng.uniform(30, 60)) * rng.uniform(1.5, 4.0)
    red_mix = np.array([1.0, -0.4, -0.3], dtype=np.float32)
    skin = skin + (bright + fine)[..., None] + red[..., None] * red_mix
    # Illumination gradient across the frame.
    yy, xx = _grid(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)) * 2.0
    skin = skin * (1.0 + rng.uniform(0.0, 0.08) * ramp)[..., None]
    return skin


def _lesion_geometry(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Signed distance-like field d (<0 inside) and normalised radius rho/R, plus r0 in px."""
    area = rng.uniform(0.05, 0.45) * height * width
    r0 = float(np.sqrt(area / np.pi))
    stretch = float(np.exp(rng.uniform(-0.3, 0.3)))  # aspect ratio, area preserving
    sx, sy = r0 * stretch, r0 / stretch
    theta = rng.uniform(0, np.pi)

    # Centre: normally the lesion fits in the frame; sometimes it is allowed to cross the border.
    margin = rng.uniform(0.15, 0.7) if rng.random() < 0.2 else 1.0
    ext_x = margin * np.hypot(sx * np.cos(theta), sy * np.sin(theta))
    ext_y = margin * np.hypot(sx * np.sin(theta), sy * np.cos(theta))
    cx = rng.uniform(min(ext_x, width / 2), max(width - ext_x, width / 2))
    cy = rng.uniform(min(ext_y, height / 2), max(height - ext_y, height / 2))

    yy, xx = _grid(height, width)
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / stretch
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) * stretch
    rho = np.hypot(u, v)
    ang = np.arctan2(v, u)

    # Radius as a function of angle from a few random Fourier harmonics, tabulated once and
    # looked up per pixel (much cheaper than evaluating the cosines on the whole grid).
    harmonics = np.arange(2, 8)
    amps = rng.uniform(0.0, 1.0, size=harmonics.size) * rng.uniform(0.08, 0.3) / harmonics**0.8
    phases = rng.uniform(0, 2 * np.pi, size=harmonics.size)
    steps = 2048
    table_ang = np.arange(steps + 1) * (2 * np.pi / steps) - np.pi
    table = 1.0 + amps @ np.cos(harmonics[:, None] * table_ang + phases[:, None])
    table = (r0 * np.clip(table, 0.35, None)).astype(np.float32)
    radius = table[np.rint((ang + np.pi) * (steps / (2 * np.pi))).astype(np.intp)]

    # Small-scale boundary jitter so the outline is not perfectly smooth.
    jitter = _smooth_noise(rng, height, width, rng.uniform(8, 16)) * rng.uniform(0.0, 0.06) * r0
    dist = rho - radius + jitter
    return dist.astype(np.float32), (rho / radius).astype(np.float32), r0


def _render_dots(
    rng: np.random.Generator, height: int, width: int, inside: np.ndarray, count: int
) -> np.ndarray:
    """Soft dark dots (globules) at random lesion pixels, float32 0..1."""
    layer = Image.new("L", (width, height), 0)
    ys, xs = np.nonzero(inside)
    if count == 0 or xs.size == 0:
        return np.zeros((height, width), np.float32)
    pick = rng.integers(0, xs.size, size=count)
    radii = rng.uniform(0.8, 3.2, size=count)
    levels = rng.uniform(120, 255, size=count)
    draw = ImageDraw.Draw(layer)
    for x, y, r, level in zip(xs[pick], ys[pick], radii, levels, strict=True):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=int(level))
    layer = layer.filter(ImageFilter.GaussianBlur(0.7))
    return np.asarray(layer, dtype=np.float32) / 255.0


def _render_lesion(rng: np.random.Generator, skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend one pigmented lesion into ``skin``; return (image float, mask uint8 0/1)."""
    height, width = skin.shape[:2]
    dist, rel, r0 = _lesion_geometry(rng, height, width)
    mask = (dist <= 0).astype(np.uint8)

    # Opacity with a soft edge of varying width (from crisp to very blurred).
    edge = float(np.exp(rng.uniform(np.log(0.6), np.log(max(0.8, 0.14 * r0)))))
    alpha = 1.0 / (1.0 + np.exp(np.clip(dist / edge, -30, 30)))

    # Pigment colour and contrast against the skin.
    colour = _LESION_COLOURS[rng.integers(len(_LESION_COLOURS))] + rng.normal(0, 8, 3)
    contrast = rng.uniform(0.35, 0.55) if rng.random() < 0.25 else rng.uniform(0.6, 1.0)
    pigment = np.broadcast_to(colour.astype(np.float32), skin.shape).copy()

    # Internal variation: smooth brightness field, radial trend, darker and lighter patches.
    pigment *= (1.0 + 0.12 * _smooth_noise(rng, height, width, rng.uniform(4, 9)))[..., None]
    pigment *= (1.0 + rng.uniform(-0.35, 0.35) * (np.clip(rel, 0, 1) - 0.5))[..., None]
    dark = _DARK_PIGMENT[rng.integers(len(_DARK_PIGMENT))]
    patch = _smooth_noise(rng, height, width, rng.uniform(5, 12))
    patch = np.clip((patch - rng.uniform(0.2, 1.2)) * 1.5, 0, 1) * rng.uniform(0.3, 0.9)
    pigment += patch[..., None] * (dark - pigment)
    if rng.random() < 0.35:  # regression-like pale areas
        pale = _smooth_noise(rng, height, width, rng.uniform(3, 7))
        pale = np.clip((pale - 0.8) * 1.2, 0, 1) * rng.uniform(0.2, 0.6)
        pigment += pale[..., None] * (skin - pigment)
    if rng.random() < 0.5:  # pigment network: dark lines along zero crossings of fine noise
        net = _smooth_noise(rng, height, width, rng.uniform(18, 32))
        lines = np.exp(-((net / 0.25) ** 2)) * rng.uniform(0.2, 0.55)
        pigment += lines[..., None] * (dark - pigment)
    n_dots = int(rng.integers(0, 40)) if rng.random() < 0.7 else 0
    dots = _render_dots(rng, height, width, dist < -2.0, n_dots)
    pigment += (dots * rng.uniform(0.3, 0.8))[..., None] * (dark - pigment)

    weight = (alpha * contrast)[..., None]
    image = skin * (1.0 - weight) + pigment * weight
    return image, mask


def _render_hairs(
    rng: np.random.Generator, height: int, width: int, centre: tuple[float, float]
) -> np.ndarray:
    """Coverage (0..1) of a few dark curved hairs, antialiased with a slight blur."""
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    diag = float(np.hypot(width, height))
    t = np.linspace(-1.0, 1.0, 48)
    for _ in range(int(rng.integers(2, 18))):
        if rng.random() < 0.4:  # pass close to the lesion so hairs cross it
            px = centre[0] + rng.normal(0, 0.1 * width)
            py = centre[1] + rng.normal(0, 0.1 * height)
        else:
            px, py = rng.uniform(0, width), rng.uniform(0, height)
        phi = rng.uniform(0, np.pi)
        half = rng.uniform(0.15, 0.6) * diag
        bend = rng.uniform(-0.4, 0.4) * half
        xs = px + np.cos(phi) * half * t - np.sin(phi) * bend * t**2
        ys = py + np.sin(phi) * half * t + np.cos(phi) * bend * t**2
        width_px = 1 if rng.random() < 0.6 else 2
        level = int(rng.integers(170, 256))
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=level, width=width_px)
    layer = layer.filter(ImageFilter.GaussianBlur(0.45))
    return np.asarray(layer, dtype=np.float32) / 255.0


def render_sample(
    rng: np.random.Generator, width: int, height: int, hair_probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic dermoscopy-like sample.

    Returns ``(image, mask)``: ``image`` is uint8 ``(height, width, 3)`` RGB and ``mask`` is
    uint8 ``(height, width)`` with 1 = lesion and 0 = skin (hairs are not part of the mask).
    All randomness comes from ``rng``, so the same generator state gives the same sample.
    """
    skin = _render_skin(rng, height, width)
    image, mask = _render_lesion(rng, skin)

    # Slight optical softness before the hairs and sensor noise.
    image = _blur_rgb(image, rng.uniform(0.3, 0.9))

    if rng.random() < hair_probability:
        ys, xs = np.nonzero(mask)
        centre = (float(xs.mean()), float(ys.mean())) if xs.size else (width / 2, height / 2)
        hairs = _render_hairs(rng, height, width, centre)
        hair_colour = rng.uniform(20, 55) * np.array([1.0, 0.85, 0.75], dtype=np.float32)
        image = image * (1.0 - hairs[..., None]) + hair_colour * hairs[..., None]

    if rng.random() < 0.4:  # dermoscope vignette: dark outside a circle near the corners
        yy, xx = _grid(height, width)
        cx = width / 2 + rng.normal(0, 0.04 * width)
        cy = height / 2 + rng.normal(0, 0.04 * height)
        radius = 0.5 * np.hypot(width, height) * rng.uniform(0.72, 0.98)
        soft = rng.uniform(2.0, 0.06 * width)
        shade = np.clip((np.hypot(xx - cx, yy - cy) - radius) / soft + 0.5, 0.0, 1.0)
        image = image * (1.0 - shade * rng.uniform(0.8, 0.97))[..., None]

    noise_sigma = np.float32(rng.uniform(1.5, 4.5))
    grain = rng.standard_normal((height, width, 1), dtype=np.float32)
    colour_noise = rng.standard_normal((height, width, 3), dtype=np.float32)
    image = image + noise_sigma * (0.7 * grain + 0.5 * colour_noise)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def _blur_rgb(image: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian-blur an HxWx3 float image (0..255) through an 8-bit RGB Pillow image."""
    rgb = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), "RGB")
    return np.asarray(rgb.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)


def _manifest(count: int, width: int, height: int, seed: int, hair_probability: float) -> dict:
    return {
        "generator": _GENERATOR,
        "format_version": _FORMAT_VERSION,
        "params": {
            "width": width,
            "height": height,
            "seed": seed,
            "hair_probability": hair_probability,
            "jpeg_quality": _JPEG_QUALITY,
        },
        "count": count,
        "images": f"{_IMAGE_DIR}/synth_{{index:05d}}.jpg",
        "masks": f"{_MASK_DIR}/synth_{{index:05d}}.png",
        "mask_values": {"skin": 0, "lesion": 255},
    }


def _expected_files(count: int) -> set[str]:
    names = {MANIFEST_NAME}
    for i in range(count):
        names.add(f"{_IMAGE_DIR}/synth_{i:05d}.jpg")
        names.add(f"{_MASK_DIR}/synth_{i:05d}.png")
    return names


def _existing_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def _check_existing(out_dir: Path, manifest: dict) -> bool:
    """True if ``out_dir`` already holds exactly this data set; False if absent or empty.

    Raises DataError for anything else, so nothing a user has is ever touched.
    """
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise DataError(f"Synthetic data target {out_dir} exists and is not a directory.")
    if not any(out_dir.iterdir()):
        return False
    manifest_path = out_dir / MANIFEST_NAME
    hint = "choose another output folder or remove this one yourself."
    if not manifest_path.is_file():
        raise DataError(
            f"Synthetic data folder {out_dir} is not empty and has no {MANIFEST_NAME}; "
            f"refusing to write into it: {hint}"
        )
    try:
        found = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {manifest_path}: {exc}; {hint}") from exc
    if found != manifest:
        raise DataError(
            f"Synthetic data folder {out_dir} was generated with different parameters "
            f"({manifest_path} has {found.get('params') if isinstance(found, dict) else found!r}"
            f", count={found.get('count') if isinstance(found, dict) else '?'}; wanted "
            f"{manifest['params']}, count={manifest['count']}): {hint}"
        )
    present = _existing_files(out_dir)
    expected = _expected_files(manifest["count"])
    missing = sorted(expected - present)
    foreign = sorted(present - expected)
    if missing or foreign:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if foreign:
            detail.append(f"{len(foreign)} foreign (e.g. {foreign[0]})")
        raise DataError(
            f"Synthetic data folder {out_dir} does not match its {MANIFEST_NAME}: "
            f"{', '.join(detail)} files: {hint}"
        )
    return True


def generate_synthetic(
    out_dir: str | Path,
    count: int = 300,
    width: int = 256,
    height: int = 192,
    seed: int = 137,
    hair_probability: float = 0.5,
) -> Path:
    """Write ``count`` synthetic image/mask pairs and a manifest under ``out_dir``; return it.

    Idempotent: if ``out_dir`` already holds a complete data set with the same parameters, it
    returns at once without rewriting anything.  A non-empty ``out_dir`` with another manifest,
    no manifest, missing or foreign files raises :class:`~flexunet.errors.DataError`; nothing
    existing is deleted or overwritten.  Files are written to a temporary sibling directory
    that is renamed to ``out_dir`` only when complete.
    """
    out_dir = Path(out_dir)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"synthetic count must be a positive integer, got {count!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 32:
            raise ConfigError(f"synthetic {name} must be an integer >= 32, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"synthetic seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= float(hair_probability) <= 1.0:
        raise ConfigError(f"hair_probability must be in [0, 1], got {hair_probability!r}")
    hair_probability = float(hair_probability)

    manifest = _manifest(count, width, height, seed, hair_probability)
    if _check_existing(out_dir, manifest):
        return out_dir

    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    try:
        (tmp / _IMAGE_DIR).mkdir()
        (tmp / _MASK_DIR).mkdir()
        for index in progress(range(count), "synthetic data", unit="pair"):
            rng = np.random.default_rng([seed, index])
            image, mask = render_sample(rng, width, height, hair_probability)
            Image.fromarray(image, "RGB").save(
                tmp / _IMAGE_DIR / f"synth_{index:05d}.jpg", quality=_JPEG_QUALITY
            )
            Image.fromarray(mask * np.uint8(255), "L").save(
                tmp / _MASK_DIR / f"synth_{index:05d}.png"
            )
        # The manifest is written last: its presence marks a complete data set.
        (tmp / MANIFEST_NAME).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            if out_dir.is_dir():  # empty (checked above); rmdir refuses if that changed
                out_dir.rmdir()
            os.rename(tmp, out_dir)
        except OSError:
            # Someone else may have produced the same data set concurrently.
            if _check_existing(out_dir, manifest):
                shutil.rmtree(tmp, ignore_errors=True)
                return out_dir
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
