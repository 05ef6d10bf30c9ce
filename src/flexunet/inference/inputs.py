"""What ``flexunet-infer`` reads: ``infer.input``, an image file, a folder or a glob pattern.

Only names are looked at here: a folder's entries and a glob's matches with an image extension
(:data:`~flexunet.data.pairing.IMAGE_EXTENSIONS`, hidden files ignored) are taken even when
they are not readable images (a folder named ``x.jpg``, a link loop, a truncated file), so
that reading them reports each one with its reason instead of leaving it out unseen.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

from flexunet.data.pairing import IMAGE_EXTENSIONS
from flexunet.errors import DataError

#: Characters that make ``infer.input`` a glob pattern (when no file has that name).
GLOB_CHARACTERS = "*?["


def _named_like_image(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _folder_images(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the image folder ({exc})") from None
    return sorted((p for p in entries if _named_like_image(p)), key=lambda p: p.name)


def _check_stems(images: Sequence[Path]) -> None:
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise DataError(
                f"two images share the stem {path.stem!r}: {stems[path.stem]} and {path}; "
                "their masks would have the same name, keep one of them"
            )
        stems[path.stem] = path


def find_images(spec: str | Path) -> list[Path]:
    """The images ``spec`` names: an image file (read whatever its extension), a folder's
    images (not recursive), or the images a glob pattern matches (``**`` recursive), sorted.

    Raises :class:`DataError` when it names nothing, matches no image, or when two images
    share a stem (their masks would have the same name).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        images = _folder_images(path)
        where = f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder"
    elif path.exists() or path.is_symlink():  # a broken link or a loop: reported when read
        images = [path]
        where = ""
    elif any(c in text for c in GLOB_CHARACTERS):
        matches = glob.glob(str(path), recursive=True)
        images = sorted(Path(m) for m in matches if _named_like_image(Path(m)))
        where = f"{text}: the pattern matches no image ({', '.join(IMAGE_EXTENSIONS)})"
    else:
        raise DataError(
            f"{text}: no such file or folder; infer.input takes an image file, a folder or a "
            "quoted glob pattern such as 'data/ph2/images/IMD00*.bmp'"
        )
    if not images:
        raise DataError(where)
    _check_stems(images)
    return images
