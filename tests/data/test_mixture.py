"""data=mixture: several folders, each split by its own seeded rule, weighted training lists,
k-fold rotation of every source's valid part (tiny real image files written in tmp_path)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from flexunet.data.sources import SPLITS, FolderSource, MixtureSource
from flexunet.data.split import split_stems
from flexunet.errors import ConfigError, DataError
from tests.helpers import SHARED_DATA


def _folder(root: Path, prefix: str, count: int) -> Path:
    """``count`` 8x6 image/mask pairs named PREFIXnn."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 2:6] = 255
    for i in range(count):
        image = np.full((6, 8, 3), i, np.uint8)
        Image.fromarray(image).save(root / "images" / f"{prefix}{i:02}.png")
        Image.fromarray(mask).save(root / "masks" / f"{prefix}{i:02}.png")
    return root


@pytest.fixture()
def roots(tmp_path: Path) -> dict[str, Path]:
    return {"a": _folder(tmp_path / "a", "a", 20), "b": _folder(tmp_path / "b", "b", 10)}


def _stems(pairs: list) -> list[str]:
    return [p.stem for p in pairs]


def test_each_source_is_split_by_its_own_seeded_rule(roots: dict[str, Path]) -> None:
    fractions = {"train": 0.6, "valid": 0.2, "test": 0.2}
    mixture = MixtureSource({
        "a": {"root": str(roots["a"]), "fractions": fractions, "split_seed": 1},
        "b": {"root": str(roots["b"]), "fractions": fractions, "split_seed": 2},
    })
    for name, seed in (("a", 1), ("b", 2)):
        alone = FolderSource(roots[name], fractions=fractions, split_seed=seed)
        for split in SPLITS:
            mine = sorted(p.stem for p in mixture.pairs(split) if p.source == name)
            assert mine == _stems(alone.pairs(split))
    tests = mixture.pairs("test")
    assert Counter(p.source for p in tests) == {"a": 4, "b": 2}
    # interleaved source by source, so data.limit takes images of every source
    assert [p.source for p in tests[:4]] == ["a", "b", "a", "b"]
    assert len(mixture.all_pairs()) == 30


def test_weight_repeats_a_sources_training_images(roots: dict[str, Path]) -> None:
    mixture = MixtureSource({
        "a": {"root": str(roots["a"]), "weight": 0.5},
        "b": {"root": str(roots["b"]), "weight": 2.5},
    })
    train = mixture.pairs("train")
    a_train = {p for p in train if p.source == "a"}
    b_train = {p for p in train if p.source == "b"}
    assert (len(a_train), len(b_train)) == (7, 7)  # of 14 and 7 training images
    counts = Counter(train)
    assert sum(counts[p] for p in a_train) == 7  # 0.5 x 14, each once
    # 2.5 x 7: every image twice, round(0.5 x 7) = 4 of them three times
    assert sorted(Counter(counts[p] for p in b_train).items()) == [(2, 3), (3, 4)]
    assert {p.source for p in mixture.pairs("valid")} == {"a", "b"}  # never weighted
    assert len(mixture.pairs("valid")) == 4 + 2
    assert train == MixtureSource({  # seeded: the same list every time
        "a": {"root": str(roots["a"]), "weight": 0.5},
        "b": {"root": str(roots["b"]), "weight": 2.5},
    }).pairs("train")
    zero = MixtureSource(
        {"a": {"root": str(roots["a"]), "weight": 0}, "b": {"root": str(roots["b"])}}
    )
    assert {p.source for p in zero.pairs("train")} == {"b"}
    assert {p.source for p in zero.pairs("test")} == {"a", "b"}


def test_folds_rotate_the_valid_part_and_keep_the_test_split(roots: dict[str, Path]) -> None:
    def source(fold: int | None) -> MixtureSource:
        return MixtureSource(
            {name: {"root": str(root)} for name, root in roots.items()},
            folds=None if fold is None else 3, fold=fold or 0,
        )

    plain = source(None)
    folds = [source(k) for k in range(3)]
    test = set(plain.pairs("test"))
    non_test = set(plain.all_pairs()) - test
    valids = [set(f.pairs("valid")) for f in folds]
    for fold, valid in zip(folds, valids, strict=True):
        assert set(fold.pairs("test")) == test
        assert set(fold.pairs("train")) | valid == non_test
        assert not set(fold.pairs("train")) & valid
    assert set().union(*valids) == non_test
    assert sum(len(v) for v in valids) == len(non_test)  # disjoint
    for name in roots:  # every source rotates its own non-test images
        assert all(any(p.source == name for p in valid) for valid in valids)


def test_fold_split_of_grouped_stems_keeps_lesions_together() -> None:
    from flexunet.data.split import fold_stems

    stems = [f"s{i:02}" for i in range(30)]
    groups = {s: f"lesion{int(s[1:]) // 3}" for s in stems}
    fractions = {"train": 0.7, "valid": 0.2, "test": 0.1}
    plain = split_stems(stems, fractions, 5, groups)
    for fold in range(4):
        split = fold_stems(stems, fractions, 5, 4, fold, groups)
        assert split["test"] == plain["test"]
        for group in set(groups.values()):
            members = {s for s in stems if groups[s] == group}
            assert sum(bool(members & set(part)) for part in split.values()) == 1


def test_bad_mixture_entries_and_folds_are_config_errors(roots: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"data.source.sources.a: unknown key\(s\) rooot"):
        MixtureSource({"a": {"rooot": str(roots["a"])}})
    with pytest.raises(ConfigError, match=r"data.source.sources.a.weight=-1"):
        MixtureSource({"a": {"root": str(roots["a"]), "weight": -1}})
    with pytest.raises(ConfigError, match=r"data.source.fold=3: use 0..2"):
        MixtureSource({"a": {"root": str(roots["a"])}}, folds=3, fold=3).pairs("train")
    with pytest.raises(ConfigError, match=r"data.source.folds=1"):
        FolderSource(roots["a"], folds=1).pairs("train")


def test_a_stem_in_two_sources_is_an_error(tmp_path: Path) -> None:
    mixture = MixtureSource({
        "a": {"root": str(_folder(tmp_path / "a", "x", 4))},
        "b": {"root": str(_folder(tmp_path / "b", "x", 4))},
    })
    with pytest.raises(DataError, match="share the stem 'x0"):
        mixture.pairs("train")


@pytest.mark.shared_data
def test_data_mixture_composes_the_three_shared_datasets(compose) -> None:
    cfg = compose(["data=mixture", f"paths.shared_data={SHARED_DATA}"])
    source = instantiate(cfg.data.source, _convert_="all")
    counts = Counter(p.source for p in source.pairs("test"))
    assert counts == {"ph2": 15, "isic2017": 15, "ham10000": 1}
    assert cfg.mask.threshold == 128  # ISIC 2017's grey mask edges are binarised
