"""A fast check of image/mask pairs before training, and a safe image loader.

:func:`check_pairs` never modifies or deletes a file: it reports every problem it finds as a
:class:`Problem` (the file and a message saying how to fix it), and
:func:`raise_if_problems` turns them into one :class:`DataError` with a readable table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexunet.data.masks import (
    DEFAULT_MAX_PIXELS,
    _as_color_map,
    _check_tolerance,
    _read_plane,
    load_strict,
    open_header,
    read_rgb,
    turns_sideways,
    unmapped_colors,
)
from flexunet.data.pairing import Pair
from flexunet.errors import DataError
from flexunet.progress import progress

__all__ = [
    "Problem",
    "check_pairs",
    "format_problems",
    "load_image_rgb",
    "raise_if_problems",
]

_MAX_SHOWN = 20
_MAX_COLOURS = 5


@dataclass
class Problem:
    """One problem with one file: ``problem`` names the file and says how to fix it."""

    path: Path
    problem: str


def _short(exc: DataError, path: Path) -> str:
    """A DataError message with its leading full path replaced by the file name."""
    message = str(exc)
    prefix = f"{path}: "
    return f"{path.name}: {message[len(prefix) :]}" if message.startswith(prefix) else message


def _check_image(
    path: Path, min_size: tuple[int, int] | None, max_pixels: int
) -> tuple[tuple[int, int] | None, list[Problem]]:
    """Header, size limits and a (reduced-resolution for JPEG) decode of one image; its size
    is the upright one (EXIF orientation), the size its mask must have."""
    try:
        img = open_header(path, "image", max_pixels)
    except DataError as exc:
        return None, [Problem(path, _short(exc, path))]
    problems: list[Problem] = []
    try:
        size = img.size
        if img.format == "JPEG":
            # decode at 1/8 scale: still reads the whole stream, so truncation is caught
            img.draft(img.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
        try:
            load_strict(img, path, "image", max_pixels)
            if turns_sideways(img):
                size = (size[1], size[0])
        except DataError as exc:
            problems.append(Problem(path, _short(exc, path)))
        if min_size is not None:
            min_w, min_h = min_size
            if size[0] < min_w or size[1] < min_h:
                problems.insert(
                    0,
                    Problem(
                        path,
                        f"{path.name}: image is {size[0]}x{size[1]}, smaller than "
                        f"min_size {min_w}x{min_h} (width x height); remove the pair or "
                        f"lower `min_size`",
                    ),
                )
    finally:
        img.close()
    return size, problems


def _fmt_colours(colours: list[tuple[tuple[int, int, int], int]]) -> str:
    shown = "; ".join(f"({r},{g},{b}) x {n:,} px" for (r, g, b), n in colours[:_MAX_COLOURS])
    more = f" and {len(colours) - _MAX_COLOURS} more" if len(colours) > _MAX_COLOURS else ""
    return shown + more


def _check_mask(
    pair: Pair,
    image_size: tuple[int, int] | None,
    cmap: Mapping[tuple[int, int, int], int],
    tolerance: int,
    max_pixels: int,
    threshold: int | None,
) -> list[Problem]:
    path = pair.mask
    try:
        plane = _read_plane(path, "mask", max_pixels)
    except DataError as exc:
        return [Problem(path, _short(exc, path))]
    problems: list[Problem] = []
    mask_size = (plane.shape[1], plane.shape[0])
    if image_size is not None and mask_size != image_size:
        problems.append(
            Problem(
                path,
                f"{path.name}: mask is {mask_size[0]}x{mask_size[1]} but its image "
                f"{pair.image.name} is {image_size[0]}x{image_size[1]} (width x height); "
                f"use the mask made for this image, or resize it to the image size with "
                f"NEAREST interpolation",
            )
        )
    try:
        colours = unmapped_colors(plane, cmap, tolerance, threshold, source=path)
    except DataError as exc:  # mostly mid-grey under mask.threshold
        return [*problems, Problem(path, _short(exc, path))]
    if colours:
        total = sum(n for _, n in colours)
        known = ", ".join(f"({r},{g},{b})" for (r, g, b) in sorted(cmap))
        if tolerance > 0:
            reason = f"farther than mask.tolerance={tolerance} from every rgb_map colour"
            fix = "raise `mask.tolerance`, add the colours to `rgb_map`, or fix the mask"
        else:
            reason = "not in rgb_map"
            fix = (
                "add the colours to `rgb_map`, fix the mask, or, if it was saved lossily "
                "(JPEG), set `mask.tolerance` (e.g. 40)"
            )
        problems.append(
            Problem(
                path,
                f"{path.name}: {len(colours)} mask colour(s) {reason} "
                f"({total:,} of {int(np.prod(plane.shape[:2])):,} pixels): "
                f"{_fmt_colours(colours)}. rgb_map colours are {known}; {fix}",
            )
        )
    return problems


def check_pairs(
    pairs: Sequence[Pair],
    rgb_map: Mapping[object, int],
    tolerance: int = 0,
    min_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    desc: str = "check",
    threshold: int | None = None,
) -> list[Problem]:
    """Check every pair and return the problems found (an empty list when all is well).

    Reported: unreadable, corrupt or truncated images and masks; images and masks of
    different sizes; mask colours not in ``rgb_map`` (beyond ``tolerance``); images smaller
    than ``min_size`` (width, height); with ``threshold`` (mask.threshold), grey masks that
    are mostly mid-grey (:func:`~flexunet.data.masks.apply_threshold`); images or masks over
    ``max_pixels``, which are refused as possible decompression bombs without being decoded;
    files that are not regular files (a folder named like an image, a link loop). Sizes are
    compared upright: the EXIF orientation of images and masks is applied. Files are only
    read. ``desc`` labels the progress bar shown for many pairs.
    """
    cmap = _as_color_map(rgb_map)
    tolerance = _check_tolerance(tolerance)
    if min_size is not None:
        min_size = (int(min_size[0]), int(min_size[1]))
    problems: list[Problem] = []
    for pair in progress(pairs, desc, unit="pair"):
        image_size, image_problems = _check_image(Path(pair.image), min_size, max_pixels)
        problems.extend(image_problems)
        problems.extend(
            _check_mask(pair, image_size, cmap, tolerance, max_pixels, threshold)
        )
    return problems


def format_problems(problems: Sequence[Problem]) -> str:
    """The problems as a two-column text table (file, problem)."""
    if not problems:
        return "no problems found"
    header = ("file", "problem")
    paths = [str(p.path) for p in problems]
    width = min(max(len(header[0]), *(len(p) for p in paths)), 80)
    lines = [f"{header[0]:<{width}}  {header[1]}", f"{'-' * width}  {'-' * 40}"]
    for path, problem in zip(paths, problems, strict=True):
        if len(path) > width:
            lines.append(path)
            lines.append(f"{'':<{width}}  {problem.problem}")
        else:
            lines.append(f"{path:<{width}}  {problem.problem}")
    return "\n".join(lines)


def raise_if_problems(problems: Sequence[Problem], context: str) -> None:
    """Raise :class:`DataError` with a table of the first 20 problems and their count."""
    if not problems:
        return
    n = len(problems)
    n_files = len({p.path for p in problems})
    table = format_problems(problems[:_MAX_SHOWN])
    more = f"\n... and {n - _MAX_SHOWN} more problem(s) not shown" if n > _MAX_SHOWN else ""
    raise DataError(f"{context}: {n} problem(s) in {n_files} file(s):\n{table}{more}")


def load_image_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as an (H, W, 3) uint8 RGB array, upright (EXIF orientation applied),
    palettes expanded, alpha dropped, greyscale replicated, 16 bit scaled to 8 bit.

    Raises :class:`DataError` naming the file when it is unreadable, truncated, or larger
    than ``max_pixels`` (refused as a possible decompression bomb without decoding it).
    """
    return read_rgb(path, "image", max_pixels)
