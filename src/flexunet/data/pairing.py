"""Pair image files with mask files by file stem (never by list position).

Accepted mask names for an image ``NAME.jpg``: ``NAME.png``, ``NAME_segmentation.png``
(ISIC 2016-2018), ``NAME_lesion.bmp`` (PH2), or any other configured suffix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flexunet.errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MASK_SUFFIXES",
    "Pair",
    "Pairing",
    "is_image_file",
    "list_image_files",
    "pair_files",
    "require_complete",
]

#: File extensions read as images or masks (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

#: Mask name suffixes tried by default: ``NAME``, ``NAME_segmentation``, ``NAME_lesion``.
DEFAULT_MASK_SUFFIXES: tuple[str, ...] = ("", "_segmentation", "_lesion")

_SHOW = 10


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``stem`` is the image's file stem, ``source`` the name of the
    mixture source it comes from (None outside a mixture)."""

    stem: str
    image: Path
    mask: Path
    source: str | None = None


@dataclass
class Pairing:
    """Result of :func:`pair_files`: the pairs (sorted by stem) and the leftovers (sorted)."""

    pairs: list[Pair]
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)


def is_image_file(path: Path) -> bool:
    """A regular, non-hidden file with one of :data:`IMAGE_EXTENSIONS`."""
    return (
        not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )


def _require_dir(folder: Path, what: str) -> None:
    if not folder.exists():
        raise DataError(
            f"{folder}: {what} folder does not exist; check the data path in the config"
        )
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} path is not a folder; point it at a folder of files")


def list_image_files(folder: str | Path, what: str = "image") -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted by name.

    Hidden files (``.DS_Store``, ``._IMD002.bmp``) and other extensions are ignored.
    Raises :class:`DataError` naming the folder when it does not exist.
    """
    folder = Path(folder)
    _require_dir(folder, what)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the {what} folder ({exc})") from None
    return sorted((p for p in entries if is_image_file(p)), key=lambda p: p.name)


def _normalise_suffixes(mask_suffixes: Iterable[str]) -> list[str]:
    if isinstance(mask_suffixes, str):
        mask_suffixes = (mask_suffixes,)
    suffixes = []
    for s in mask_suffixes:
        if not isinstance(s, str):
            raise ConfigError(f"mask_suffixes: {s!r} is not a string")
        if s not in suffixes:
            suffixes.append(s)
    if not suffixes:
        raise ConfigError("mask_suffixes is empty: use at least '' (mask named like its image)")
    return sorted(suffixes, key=len, reverse=True)  # longest first; stable for equal lengths


def _candidate_stems(mask_stem: str, suffixes: Sequence[str]) -> list[str]:
    """Image stems a mask stem may belong to, longest suffix first."""
    out = []
    for suffix in suffixes:
        if suffix == "":
            out.append(mask_stem)
        elif mask_stem.endswith(suffix) and len(mask_stem) > len(suffix):
            out.append(mask_stem[: -len(suffix)])
    return out


def pair_files(
    images_dir: str | Path,
    masks_dir: str | Path,
    mask_suffixes: Sequence[str] = DEFAULT_MASK_SUFFIXES,
) -> Pairing:
    """Pair the images in ``images_dir`` with the masks in ``masks_dir`` by file stem.

    A mask belongs to the image whose stem equals the mask's stem minus one of
    ``mask_suffixes`` (longest suffix tried first). Pairs are sorted by stem. Hidden files
    and files without an image extension are ignored. When both folders are the same, files
    whose stem ends with a non-empty suffix are the masks.

    Raises :class:`DataError` when a folder does not exist, when two images share a stem
    (``a.jpg`` and ``a.png``), or when two masks belong to one image; each message names the
    files involved.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    suffixes = _normalise_suffixes(mask_suffixes)
    image_files = list_image_files(images_dir, "image")
    mask_files = list_image_files(masks_dir, "mask")

    if images_dir.resolve() == masks_dir.resolve():
        named = [s for s in suffixes if s]
        if not named:
            raise DataError(
                f"{images_dir}: images and masks are in the same folder, so masks need a "
                f"name suffix such as '_segmentation'; set `mask_suffixes` accordingly"
            )
        mask_set = {p for p in mask_files if any(p.stem.endswith(s) for s in named)}
        image_files = [p for p in image_files if p not in mask_set]
        mask_files = sorted(mask_set, key=lambda p: p.name)
        suffixes = named

    images: dict[str, Path] = {}
    for path in image_files:
        if path.stem in images:
            raise DataError(
                f"two images share the stem {path.stem!r}: {images[path.stem]} and {path}; "
                f"keep one of them (masks are paired by stem)"
            )
        images[path.stem] = path

    masks: dict[str, Path] = {}
    orphans: list[Path] = []
    for path in mask_files:
        candidates = _candidate_stems(path.stem, suffixes)
        stem = next((c for c in candidates if c in images), None)
        if stem is None:
            orphans.append(path)
            continue
        if stem in masks:
            raise DataError(
                f"two masks for image {images[stem]}: {masks[stem]} and {path}; keep one of them"
            )
        masks[stem] = path

    pairs = [Pair(stem, images[stem], masks[stem]) for stem in sorted(masks)]
    without_mask = sorted((images[s] for s in images if s not in masks), key=lambda p: p.name)
    return Pairing(pairs, without_mask, sorted(orphans, key=lambda p: p.name))


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:_SHOW])
    more = f", ... and {len(paths) - _SHOW} more" if len(paths) > _SHOW else ""
    return shown + more


def require_complete(pairing: Pairing, images_dir: str | Path, masks_dir: str | Path) -> list[Pair]:
    """Return ``pairing.pairs``, or raise :class:`DataError` if any image lacks a mask or any
    mask lacks an image (listing the first 10 of each, with counts)."""
    problems = []
    if pairing.images_without_mask:
        n = len(pairing.images_without_mask)
        problems.append(
            f"{n} image(s) in {images_dir} without a mask in {masks_dir}: "
            f"{_listing(pairing.images_without_mask)}"
        )
    if pairing.masks_without_image:
        n = len(pairing.masks_without_image)
        problems.append(
            f"{n} mask(s) in {masks_dir} without an image in {images_dir}: "
            f"{_listing(pairing.masks_without_image)}"
        )
    if problems:
        raise DataError(
            "images and masks do not pair up ("
            f"{len(pairing.pairs)} pair(s) found).\n  - "
            + "\n  - ".join(problems)
            + "\nMasks are paired by file stem: IMAGE.ext with IMAGE.png, "
            "IMAGE_segmentation.png or IMAGE_lesion.bmp (see `mask_suffixes`). "
            "Add the missing files, rename them, or remove the unpaired ones."
        )
    return list(pairing.pairs)
