"""Data sources: where the image/mask pairs of each split come from.

A source is referenced from ``conf/data/*.yaml`` by ``_target_`` and answers one question,
``pairs(split)``; decoding, resizing and augmentation happen in :mod:`flexunet.data.pipeline`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import random
from collections.abc import Mapping, Sequence
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

from flexunet.data.pairing import Pair, pair_files, require_complete
from flexunet.data.split import fold_stems, read_lesion_groups, split_stems
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
    are assigned to one split. With ``folds`` (k-fold), the test split stays the same and
    fold ``fold`` of the other images is the valid split (:func:`~flexunet.data.split.fold_stems`).
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
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.image_dir = image_dir
        self.mask_dir = mask_dir
        self.mask_suffixes = tuple(mask_suffixes)
        self.fractions = dict(fractions)
        self.split_seed = split_seed
        self.metadata = Path(metadata).expanduser() if metadata else None
        self.folds, self.fold = folds, fold
        self._splits: dict[str, list[Pair]] | None = None

    def _load(self) -> dict[str, list[Pair]]:
        images, masks = self.root / self.image_dir, self.root / self.mask_dir
        pairing = pair_files(images, masks, self.mask_suffixes)
        pairs = require_complete(pairing, images, masks)
        if not pairs:
            raise DataError(f"{images}: no image/mask pairs found")
        by_stem = {p.stem: p for p in pairs}
        groups = read_lesion_groups(self.metadata, list(by_stem)) if self.metadata else None
        if self.folds is None:
            stems = split_stems(list(by_stem), self.fractions, self.split_seed, groups)
        else:
            stems = fold_stems(
                list(by_stem), self.fractions, self.split_seed, self.folds, self.fold, groups
            )
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
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        folder = Path(root).expanduser() / f"n{count}_{width}x{height}_seed{generator_seed}"
        super().__init__(
            folder, fractions=fractions, split_seed=split_seed, folds=folds, fold=fold
        )
        self.count, self.width, self.height = count, width, height
        self.generator_seed = generator_seed

    def _load(self) -> dict[str, list[Pair]]:
        from flexunet.data.synthetic import generate_synthetic

        generate_synthetic(
            self.root, count=self.count, width=self.width, height=self.height,
            seed=self.generator_seed,
        )
        return super()._load()


#: What a mixture entry may hold besides ``weight``: the arguments of :class:`FolderSource`.
_MEMBER_KEYS = tuple(
    name for name in inspect.signature(FolderSource).parameters if name not in ("folds", "fold")
)


class MixtureSource(DataSource):
    """Several folders in one run (``data=mixture``), each split by its own seeded rule.

    ``sources`` maps a name to a :class:`FolderSource`'s arguments (``root``, ``mask_dir``,
    ``mask_suffixes``, ``fractions``, ``split_seed``, ``metadata``, ...) plus ``weight``.
    Every source is split on its own, so each keeps its own test images (scored per source
    by flexunet-eval); ``folds``/``fold`` rotate the valid part of every source at once.
    The splits are the union of the sources' splits, interleaved source by source (so that
    ``data.limit`` takes images of every source) and tagged with the source's name
    (:attr:`Pair.source`).

    ``weight`` (default 1) is how often each training image of the source is drawn per
    epoch: each image is listed ``floor(weight)`` times, and a seeded choice (the source's
    ``split_seed``) of ``round(frac(weight) * n)`` of its images once more; 0 leaves the
    source out of training (its valid and test images stay). The valid and test splits are
    never weighted. File stems must be unique across the sources.
    """

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, Any]],
        folds: int | None = None,
        fold: int = 0,
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ConfigError(
                "data.source.sources: give at least one source, e.g. "
                "{ph2: {root: DIR, weight: 1}}"
            )
        self.members: dict[str, FolderSource] = {}
        self.weights: dict[str, float] = {}
        for name, entry in sources.items():
            where = f"data.source.sources.{name}"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where}: expected a mapping with root (and weight, ...)")
            entry = dict(entry)
            weight = entry.pop("weight", 1.0)
            unknown = sorted(set(entry) - set(_MEMBER_KEYS))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown key(s) {', '.join(unknown)}; a source takes weight, "
                    f"{', '.join(_MEMBER_KEYS)}"
                )
            if "root" not in entry:
                raise ConfigError(f"{where}.root is required: the folder with images/ and masks/")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                math.isfinite(weight) and weight >= 0
            ):
                raise ConfigError(f"{where}.weight={weight!r}: use a number >= 0")
            self.members[str(name)] = FolderSource(**entry, folds=folds, fold=fold)
            self.weights[str(name)] = float(weight)
        roots = [str(m.root) for m in self.members.values()]
        self.root = Path(os.path.commonpath(roots)) if len(roots) > 1 else Path(roots[0])
        self.folds, self.fold = folds, fold
        self._splits: dict[str, list[Pair]] | None = None

    def _weighted(self, name: str, pairs: list[Pair]) -> list[Pair]:
        weight = self.weights[name]
        whole, part = int(weight), weight - int(weight)
        extra = random.Random(self.members[name].split_seed).sample(
            pairs, math.floor(part * len(pairs) + 0.5)
        )
        return [p for p in pairs for _ in range(whole)] + sorted(extra, key=lambda p: p.stem)

    def _load(self) -> dict[str, list[Pair]]:
        per_source: dict[str, dict[str, list[Pair]]] = {}
        seen: dict[str, Pair] = {}
        for name, member in self.members.items():
            splits = {}
            for split in SPLITS:
                tagged = [dataclasses.replace(p, source=name) for p in member.pairs(split)]
                for pair in tagged:
                    if pair.stem in seen:
                        raise DataError(
                            f"{pair.image} (source {name}) and {seen[pair.stem].image} (source "
                            f"{seen[pair.stem].source}) share the stem {pair.stem!r}; stems must "
                            "be unique across data.source.sources (remove the duplicate)"
                        )
                    seen[pair.stem] = pair
                splits[split] = tagged
            splits["train"] = self._weighted(name, splits["train"])
            per_source[name] = splits

        def interleave(lists: list[list[Pair]]) -> list[Pair]:
            return [p for p in chain.from_iterable(zip_longest(*lists)) if p is not None]

        return {s: interleave([per_source[n][s] for n in self.members]) for s in SPLITS}

    def pairs(self, split: str) -> list[Pair]:
        _check_split(split)
        if self._splits is None:
            self._splits = self._load()
        return self._splits[split]

    def all_pairs(self) -> list[Pair]:
        """Every pair once (the training list repeats weighted ones), by stem."""
        unique = dict.fromkeys(p for s in SPLITS for p in self.pairs(s))
        return sorted(unique, key=lambda p: p.stem)

    def describe(self) -> str:
        parts = []
        for name in self.members:
            counts = ", ".join(
                f"{s} {len({p for p in self.pairs(s) if p.source == name})}" for s in SPLITS
            )
            drawn = sum(p.source == name for p in self.pairs("train"))
            parts.append(f"{name} ({counts}; weight {self.weights[name]:g}: {drawn} draws)")
        return f"MixtureSource({self.root}): " + "; ".join(parts)
