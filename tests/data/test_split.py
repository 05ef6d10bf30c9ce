"""Reproducible, optionally lesion-grouped train/valid/test splits."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from flexunet.data.split import allocate_counts, read_lesion_groups, split_stems
from flexunet.errors import ConfigError, DataError
from tests.helpers import SHARED_DATA

DATA = SHARED_DATA
FRACTIONS = {"train": 0.7, "valid": 0.2, "test": 0.1}


@pytest.fixture(scope="module")
def ph2_stems() -> list[str]:
    return sorted(p.stem for p in (DATA / "ph2" / "images").glob("*.jpg"))


def _check_partition(split: dict[str, list[str]], stems: list[str]) -> None:
    everything = [s for part in split.values() for s in part]
    assert sorted(everything) == sorted(stems)  # each stem exactly once
    for part in split.values():
        assert part == sorted(part)


@pytest.mark.shared_data
def test_sizes_70_20_10_of_150(ph2_stems: list[str]) -> None:
    assert len(ph2_stems) == 150
    split = split_stems(ph2_stems, FRACTIONS, seed=137)
    assert list(split) == ["train", "valid", "test"]
    assert {k: len(v) for k, v in split.items()} == {"train": 105, "valid": 30, "test": 15}
    _check_partition(split, ph2_stems)


@pytest.mark.shared_data
def test_same_across_runs_and_input_orders(ph2_stems: list[str]) -> None:
    first = split_stems(ph2_stems, FRACTIONS, seed=137)
    assert split_stems(ph2_stems, FRACTIONS, seed=137) == first
    assert split_stems(list(reversed(ph2_stems)), FRACTIONS, seed=137) == first
    shuffled = list(ph2_stems)
    random.Random(5).shuffle(shuffled)
    assert split_stems(tuple(shuffled), FRACTIONS, seed=137) == first
    assert split_stems(ph2_stems, FRACTIONS, seed=138) != first


def test_pinned_result() -> None:
    # guards against accidental changes of the algorithm (and so of published splits)
    split = split_stems(
        [f"s{i}" for i in range(10)], {"train": 0.6, "valid": 0.2, "test": 0.2}, 137
    )
    assert split == {
        "train": ["s0", "s3", "s4", "s5", "s7", "s9"],
        "valid": ["s6", "s8"],
        "test": ["s1", "s2"],
    }


def test_zero_fraction_and_minimum_one_item() -> None:
    split = split_stems(["a", "b", "c", "d"], {"train": 0.8, "valid": 0.2, "test": 0.0}, 1)
    assert split["test"] == [] and len(split["train"]) + len(split["valid"]) == 4
    tiny = split_stems(["a", "b", "c"], {"train": 0.98, "valid": 0.01, "test": 0.01}, 1)
    assert [len(v) for v in tiny.values()] == [1, 1, 1]
    assert allocate_counts(150, [0.7, 0.2, 0.1]) == [105, 30, 15]
    assert allocate_counts(0, [0.7, 0.2, 0.1]) == [0, 0, 0]
    assert split_stems([], FRACTIONS, 0) == {"train": [], "valid": [], "test": []}


@pytest.mark.parametrize(
    "fractions",
    [
        {"train": 0.7, "valid": 0.2},
        {"train": 0.7, "valid": 0.2, "test": 0.2},
        {"train": 1.1, "valid": -0.1},
        {"train": "0.7", "valid": 0.3},
        {},
    ],
)
def test_bad_fractions(fractions: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        split_stems(["a", "b"], fractions, 0)  # type: ignore[arg-type]


def test_duplicate_stems_rejected() -> None:
    with pytest.raises(DataError, match="a"):
        split_stems(["a", "b", "a"], FRACTIONS, 0)


def _write_metadata(path: Path, stems: list[str], seed: int = 3) -> dict[str, str]:
    """A fake HAM10000_metadata.csv: lesions of 1 to 4 images each."""
    rng = random.Random(seed)
    lesion_of: dict[str, str] = {}
    i = 0
    while i < len(stems):
        size = rng.randint(1, 4)
        for stem in stems[i : i + size]:
            lesion_of[stem] = f"HAM_{i:07d}"
        i += size
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        for stem, lesion in sorted(lesion_of.items(), key=lambda kv: kv[1]):
            writer.writerow([lesion, stem, "nv", "histo", "45.0", "male", "back"])
    return lesion_of


@pytest.mark.shared_data
def test_lesion_groups_never_straddle(tmp_path: Path, ph2_stems: list[str]) -> None:
    metadata = tmp_path / "HAM10000_metadata.csv"
    expected = _write_metadata(metadata, ph2_stems)
    groups = read_lesion_groups(metadata, ph2_stems)
    assert groups == expected
    split = split_stems(ph2_stems, FRACTIONS, seed=137, groups=groups)
    _check_partition(split, ph2_stems)
    where: dict[str, set[str]] = {}
    for name, part in split.items():
        for stem in part:
            where.setdefault(groups[stem], set()).add(name)
    assert all(len(names) == 1 for names in where.values())
    sizes = {k: len(v) for k, v in split.items()}
    assert abs(sizes["train"] - 105) <= 4 and abs(sizes["valid"] - 30) <= 4
    assert sizes["test"] > 0
    again = split_stems(list(reversed(ph2_stems)), FRACTIONS, seed=137, groups=dict(groups))
    assert again == split


def test_one_big_group_still_fills_every_split() -> None:
    stems = [f"s{i:03d}" for i in range(20)]
    groups = {s: ("big" if i < 15 else s) for i, s in enumerate(stems)}
    split = split_stems(stems, FRACTIONS, seed=0, groups=groups)
    assert all(split.values())
    assert any(set(part) >= set(stems[:15]) for part in split.values())


def test_metadata_missing_stems(tmp_path: Path) -> None:
    metadata = tmp_path / "meta.csv"
    metadata.write_text("lesion_id,image_id\nHAM_1,ISIC_0000001\n")
    with pytest.raises(DataError, match="2 of 3") as info:
        read_lesion_groups(metadata, ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"])
    assert "ISIC_0000002" in str(info.value) and "meta.csv" in str(info.value)


def test_metadata_bad_columns_and_missing_file(tmp_path: Path) -> None:
    metadata = tmp_path / "wrong.csv"
    metadata.write_text("lesion,image\nHAM_1,ISIC_0000001\n")
    with pytest.raises(DataError, match="wrong.csv"):
        read_lesion_groups(metadata, ["ISIC_0000001"])
    with pytest.raises(DataError, match="nothere.csv"):
        read_lesion_groups(tmp_path / "nothere.csv", ["ISIC_0000001"])


def test_groups_missing_stem() -> None:
    with pytest.raises(DataError, match="b"):
        split_stems(["a", "b"], FRACTIONS, 0, groups={"a": "L1"})


def test_folds_partition_the_non_test_stems() -> None:
    from flexunet.data.split import fold_stems

    stems = [f"IMD{i:03}" for i in range(50)]
    fractions = {"train": 0.7, "valid": 0.2, "test": 0.1}
    plain = split_stems(stems, fractions, 137)
    splits = [fold_stems(stems, fractions, 137, 5, k) for k in range(5)]
    valids = [set(s["valid"]) for s in splits]
    non_test = set(stems) - set(plain["test"])
    assert all(s["test"] == plain["test"] for s in splits)  # the test split does not move
    assert set().union(*valids) == non_test and sum(map(len, valids)) == len(non_test) == 45
    assert all(set(s["train"]) == non_test - v for s, v in zip(splits, valids, strict=True))
