"""Reproducible train/valid/test splits, optionally grouped by lesion.

The stems (or group ids) are sorted before a shuffle with ``random.Random(seed)``, so a split
depends only on the set of stems, the fractions and the seed: not on the directory listing
order or the operating system. With HAM10000 metadata, all images of one ``lesion_id`` go to
the same split (several images of one lesion must not straddle train and test).
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from flexunet.errors import ConfigError, DataError

__all__ = ["allocate_counts", "fold_stems", "read_lesion_groups", "split_stems"]

_SUM_TOLERANCE = 1e-6


def _check_fractions(fractions: Mapping[str, float]) -> list[tuple[str, float]]:
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(
            f"split fractions must be a non-empty mapping such as "
            f"{{'train': 0.7, 'valid': 0.2, 'test': 0.1}}, got {fractions!r}"
        )
    items: list[tuple[str, float]] = []
    for name, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"split fraction {name!r}: {value!r} is not a number")
        value = float(value)
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"split fraction {name!r}: {value} is not within 0..1")
        items.append((str(name), value))
    total = math.fsum(v for _, v in items)
    if abs(total - 1.0) > _SUM_TOLERANCE:
        listing = ", ".join(f"{k}={v:g}" for k, v in items)
        raise ConfigError(f"split fractions must sum to 1, got {total:g} ({listing}); adjust them")
    return items


def _bounds(n: int, fractions: Sequence[float]) -> list[int]:
    """Cumulative boundaries round(n * cumulative fraction); the last is exactly n."""
    bounds, cumulative = [], 0.0
    for f in fractions:
        cumulative += f
        bounds.append(min(n, max(0, math.floor(n * cumulative + 0.5))))
    bounds[-1] = n
    for i in range(1, len(bounds)):  # monotone even with float noise
        bounds[i] = max(bounds[i], bounds[i - 1])
    return bounds


def allocate_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items into counts by cumulative rounding (deterministic).

    A zero fraction gets 0 items. With at least as many items as nonzero fractions, every
    nonzero fraction gets at least one item (taken from the currently largest count).
    """
    bounds = _bounds(n, fractions)
    counts = [b - a for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]
    nonzero = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(nonzero):
        for i in nonzero:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _check_stems(stems: Sequence[str]) -> list[str]:
    if isinstance(stems, str):
        raise DataError("split_stems expects a sequence of stems, got a single string")
    out = [str(s) for s in stems]
    dupes = sorted(s for s, c in Counter(out).items() if c > 1)
    if dupes:
        raise DataError(
            f"{len(dupes)} stem(s) occur more than once in the split input: "
            f"{', '.join(dupes[:5])}; every image must have a unique file stem"
        )
    return out


def split_stems(
    stems: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """Split ``stems`` into named parts, e.g. ``{"train": 0.7, "valid": 0.2, "test": 0.1}``.

    The stems (or, with ``groups``, the group ids) are sorted and then shuffled with
    ``random.Random(seed)``, so the result is identical for any input order and on any OS.
    Sizes come from cumulative rounding (150 at 0.7/0.2/0.1 gives 105/30/15); a fraction of
    0 gives an empty list, and with at least as many items as fractions every nonzero
    fraction gets at least one item.

    With ``groups`` (stem -> group id such as a HAM10000 ``lesion_id``) whole groups are
    shuffled and allocated, so no group straddles two splits; the target sizes are in
    images, so actual sizes are close to, not exactly, the fractions.

    Returns {name: sorted stems} in the order of ``fractions``.
    Raises :class:`ConfigError` for fractions that are negative or do not sum to 1.
    """
    items = _check_fractions(fractions)
    names = [k for k, _ in items]
    fracs = [v for _, v in items]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"split seed must be an integer, got {seed!r}")
    ordered = sorted(_check_stems(stems))
    rng = random.Random(seed)

    if groups is None:
        rng.shuffle(ordered)
        counts = allocate_counts(len(ordered), fracs)
        result: dict[str, list[str]] = {}
        start = 0
        for name, count in zip(names, counts, strict=True):
            result[name] = sorted(ordered[start : start + count])
            start += count
        return result

    missing = [s for s in ordered if s not in groups]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) have no group (lesion_id): {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; add them to the metadata"
        )
    members: dict[str, list[str]] = {}
    for stem in ordered:
        members.setdefault(str(groups[stem]), []).append(stem)
    group_ids = sorted(members)
    rng.shuffle(group_ids)

    bounds = _bounds(len(ordered), fracs)
    assigned: list[list[str]] = [[] for _ in names]
    running = 0
    for gid in group_ids:
        size = len(members[gid])
        middle = running + size / 2.0
        k = next(i for i, b in enumerate(bounds) if middle < b)
        assigned[k].append(gid)
        running += size

    nonzero = [i for i, f in enumerate(fracs) if f > 0]
    if len(group_ids) >= len(nonzero):
        for i in nonzero:
            if not assigned[i]:
                donor = max(range(len(assigned)), key=lambda j: (len(assigned[j]), -j))
                # move the donor's smallest group (the last such one in shuffled order)
                _, pos = min((len(members[g]), -p) for p, g in enumerate(assigned[donor]))
                assigned[i].append(assigned[donor].pop(-pos))

    return {
        name: sorted(stem for gid in gids for stem in members[gid])
        for name, gids in zip(names, assigned, strict=True)
    }


def fold_stems(
    stems: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
    folds: int,
    fold: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """k-fold: the test split of :func:`split_stems` (its ``test`` fraction, same seed: the
    same images as without folds), and the rest cut into ``folds`` parts; part ``fold`` is
    the valid split, the others the train split.

    The parts are one seeded partition of the non-test stems (by :func:`split_stems` with
    equal fractions, so ``groups`` keep a lesion within one part), so the ``folds`` valid
    splits are disjoint and together they are every non-test stem. The ``valid`` fraction
    is not used: each valid split is about 1/``folds`` of the non-test stems.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"data.source.folds={folds!r}: use an integer of at least 2, or null")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ConfigError(
            f"data.source.fold={fold!r}: use 0..{folds - 1} (data.source.folds={folds})"
        )
    items = dict(_check_fractions(fractions))
    test = items.get("test", 0.0)
    outer = split_stems(stems, {"rest": 1.0 - test, "test": test}, seed, groups)
    rest = outer["rest"]
    if len(rest) < folds:
        raise DataError(
            f"{len(rest)} non-test image(s) cannot be cut into data.source.folds={folds} "
            "folds; use fewer folds"
        )
    parts = split_stems(rest, {str(i): 1.0 / folds for i in range(folds)}, seed, groups)
    valid = parts[str(fold)]
    return {
        "train": sorted(x for i, part in parts.items() if i != str(fold) for x in part),
        "valid": valid,
        "test": outer["test"],
    }


def read_lesion_groups(metadata_csv: str | Path, stems: Sequence[str]) -> dict[str, str]:
    """Read ``lesion_id`` per image from a HAM10000_metadata.csv (columns ``lesion_id``,
    ``image_id``; image ids like ``ISIC_0027419``) and return {stem: lesion_id}.

    Raises :class:`DataError` naming the file when it is missing, lacks a column, maps one
    image to two lesions, or when stems are missing from it (with their count and the first
    few).
    """
    path = Path(metadata_csv)
    if not path.is_file():
        raise DataError(
            f"{path}: lesion metadata file does not exist; check `metadata` in the config"
        )
    lesion_of: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            if "lesion_id" not in columns or "image_id" not in columns:
                raise DataError(
                    f"{path}: metadata needs the columns 'lesion_id' and 'image_id' "
                    f"(HAM10000_metadata.csv); found {columns}"
                )
            reader.fieldnames = columns
            for line, row in enumerate(reader, start=2):
                image_id = (row.get("image_id") or "").strip()
                lesion_id = (row.get("lesion_id") or "").strip()
                if not image_id:
                    continue
                if not lesion_id:
                    raise DataError(f"{path}, line {line}: image {image_id} has an empty lesion_id")
                previous = lesion_of.setdefault(image_id, lesion_id)
                if previous != lesion_id:
                    raise DataError(
                        f"{path}, line {line}: image {image_id} is listed under two lesions "
                        f"({previous} and {lesion_id}); fix the metadata"
                    )
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the lesion metadata ({exc})") from None

    stems = [str(s) for s in stems]
    missing = sorted(s for s in stems if s not in lesion_of)
    if missing:
        raise DataError(
            f"{path}: {len(missing)} of {len(stems)} image(s) are not in the metadata, "
            f"e.g. {', '.join(missing[:5])}; use the metadata file that matches the images "
            f"(image_id must equal the image file stem)"
        )
    return {s: lesion_of[s] for s in stems}
