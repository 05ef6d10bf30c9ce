"""Data sources: where the image/mask pairs of each split come from.

A source is referenced from ``conf/data/*.yaml`` by ``_target_`` and answers one question,
``pairs(split)``; decoding, resizing and augmentation happen in :mod:`flexunet.data.pipeline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from flexunet.data.pairing import Pair, pair_files, require_complete
from flexunet.data.split import read_lesion_groups, split_stems
from flexunet.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
DEFAULT_SUFFIXES = ("", "_segmentation", "_lesion")
DEFAULT_FRACTIONS = {"train": 0.7, "valid": 0.2, "test": 0.1}


class DataSource:
    """Base class: a root folder and a list of pairs per split."""

    root: Path

    def pairs(self, split: str) -> list[Pair]:
        raise NotImplementedError

    def all_pairs(self) -> list[Pair]:
        return sorted((p for s in SPLITS for p in self.pairs(s)), key=lambda p: p.stem)

    def describe(self) -> str:
        counts = ", ".join(f"{s} {len(self.pairs(s))}" for s in SPLITS)
        return f"{type(self).__name__}({self.root}): {counts}"


def split_pairs(
    source: DataSource, split: str, limit: int | None = None, option: str = "split"
) -> list[Pair]:
    """The pairs of ``split`` (``all``: every split, by stem), at most ``limit`` of them.

    ``option`` names the config key the split came from (e.g. ``eval.split``) in the error
    raised for an unknown split name. An empty result is an error.
    """
    if split != "all" and split not in SPLITS:
        raise ConfigError(f"{option}={split!r}: use one of {', '.join(SPLITS)} or all")
    pairs = source.all_pairs() if split == "all" else source.pairs(split)
    if limit:
        pairs = pairs[:limit]
    if not pairs:
        raise DataError(
            f"{source.root}: the {split} split has no image/mask pairs; add images or change "
            "the split fractions (data.source.fractions)"
        )
    return pairs


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


class FolderSource(DataSource):
    """``ROOT/images`` + ``ROOT/masks``, split on the fly by the project's seeded rule.

    The split sorts the stems before a seeded shuffle, so it is the same on every OS and for
    every directory listing order; with ``metadata`` (HAM10000_metadata.csv) whole lesions
    are assigned to one split.
    """

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffixes: Sequence[str] = DEFAULT_SUFFIXES,
        fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
        split_seed: int = 137,
        metadata: str | Path | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.image_dir = image_dir
        self.mask_dir = mask_dir
        self.mask_suffixes = tuple(mask_suffixes)
        self.fractions = dict(fractions)
        self.split_seed = split_seed
        self.metadata = Path(metadata).expanduser() if metadata else None
        self._splits: dict[str, list[Pair]] | None = None

    def _load(self) -> dict[str, list[Pair]]:
        images, masks = self.root / self.image_dir, self.root / self.mask_dir
        pairing = pair_files(images, masks, self.mask_suffixes)
        pairs = require_complete(pairing, images, masks)
        if not pairs:
            raise DataError(f"{images}: no image/mask pairs found")
        by_stem = {p.stem: p for p in pairs}
        groups = read_lesion_groups(self.metadata, list(by_stem)) if self.metadata else None
        stems = split_stems(list(by_stem), self.fractions, self.split_seed, groups)
        return {s: [by_stem[x] for x in stems.get(s, [])] for s in SPLITS}

    def pairs(self, split: str) -> list[Pair]:
        _check_split(split)
        if self._splits is None:
            self._splits = self._load()
        return self._splits[split]


class SplitFolderSource(DataSource):
    """The prepared layout ``ROOT/{train,valid,test}/{images,masks}`` (see flexunet-prepare)."""

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images",
        mask_dir: str = "masks",
        mask_suffixes: Sequence[str] = DEFAULT_SUFFIXES,
    ) -> None:
        self.root = Path(root).expanduser()
        self.image_dir = image_dir
        self.mask_dir = mask_dir
        self.mask_suffixes = tuple(mask_suffixes)
        self._cache: dict[str, list[Pair]] = {}

    def pairs(self, split: str) -> list[Pair]:
        _check_split(split)
        if split not in self._cache:
            folder = self.root / split
            if not folder.is_dir():
                raise DataError(
                    f"{folder}: split folder does not exist; prepare the dataset with "
                    f"`flexunet-prepare source=SRC output={self.root}`"
                )
            images, masks = folder / self.image_dir, folder / self.mask_dir
            pairing = pair_files(images, masks, self.mask_suffixes)
            self._cache[split] = require_complete(pairing, images, masks)
        return self._cache[split]


class SyntheticSource(FolderSource):
    """Generated dermoscopy-like data (see :mod:`flexunet.data.synthetic`), created on first use.

    Each parameter set gets its own sub-folder of ``root``, so changing ``count`` or the size
    never touches data generated before.
    """

    def __init__(
        self,
        root: str | Path,
        count: int = 300,
        width: int = 256,
        height: int = 192,
        generator_seed: int = 0,
        fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
        split_seed: int = 137,
    ) -> None:
        folder = Path(root).expanduser() / f"n{count}_{width}x{height}_seed{generator_seed}"
        super().__init__(folder, fractions=fractions, split_seed=split_seed)
        self.count, self.width, self.height = count, width, height
        self.generator_seed = generator_seed

    def _load(self) -> dict[str, list[Pair]]:
        from flexunet.data.synthetic import generate_synthetic

        generate_synthetic(
            self.root, count=self.count, width=self.width, height=self.height,
            seed=self.generator_seed,
        )
        return super()._load()
