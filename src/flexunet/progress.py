"""Progress bars for the long loops: only when there are many items, on stderr.

One rule for every tool (prediction, scoring, ``flexunet-prepare``, the data check before
training, synthetic data): a tqdm bar from :data:`PROGRESS_MIN_IMAGES` items on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: Tools show a progress bar from this many images on.
PROGRESS_MIN_IMAGES = 20


def progress(items: Sequence[T], desc: str, unit: str = "image") -> Iterable[T]:
    """``items`` with a tqdm progress bar (on stderr) when there are many of them."""
    return tqdm(items, desc=desc, unit=unit, disable=len(items) < PROGRESS_MIN_IMAGES)
