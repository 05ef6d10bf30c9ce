"""Data sources: FolderSource splits like flexunet-prepare; SplitFolderSource reads its output."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra.utils import instantiate

from flexunet.data.sources import SPLITS, FolderSource, SplitFolderSource
from flexunet.errors import DataError
from tests.helpers import SHARED_DATA

PH2 = SHARED_DATA / "ph2"



def _prepared_split(prepared: Path) -> dict[str, list[str]]:
    with (prepared / "split.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {s: sorted(Path(r["file"]).stem for r in rows if r["split"] == s) for s in SPLITS}


@pytest.mark.shared_data
def test_folder_source_splits_like_prepare(prepared_ph2: Path) -> None:
    source = FolderSource(PH2)
    expected = _prepared_split(prepared_ph2)
    assert {s: [p.stem for p in source.pairs(s)] for s in SPLITS} == expected
    assert [len(v) for v in expected.values()] == [105, 30, 15]


@pytest.mark.shared_data
def test_split_folder_source_reads_prepared_output(prepared_ph2: Path) -> None:
    source = SplitFolderSource(prepared_ph2)
    expected = _prepared_split(prepared_ph2)
    for split in SPLITS:
        pairs = source.pairs(split)
        assert [p.stem for p in pairs] == expected[split]
        assert all(p.image.parent == prepared_ph2 / split / "images" for p in pairs)
        assert all(p.mask.name == f"{p.stem}.png" for p in pairs)
    assert source.describe().endswith("train 105, valid 30, test 15")
    assert len(source.all_pairs()) == 150


@pytest.mark.shared_data
def test_data_configs_read_ph2_and_its_prepared_copy(compose, prepared_ph2: Path) -> None:
    cfg = compose(["data=skin_cancer", f"data.source.root={prepared_ph2}"])
    prepared = instantiate(cfg.data.source, _convert_="all")
    cfg = compose(["data=folder", f"data.source.root={PH2}"])
    folder = instantiate(cfg.data.source, _convert_="all")
    assert isinstance(prepared, SplitFolderSource) and isinstance(folder, FolderSource)
    for split in SPLITS:
        assert [p.stem for p in prepared.pairs(split)] == [p.stem for p in folder.pairs(split)]


def test_split_folder_source_names_the_missing_split(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"valid: split folder does not exist.*flexunet-prepare"):
        SplitFolderSource(tmp_path).pairs("valid")
