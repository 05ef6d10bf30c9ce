"""flexunet-prepare: check first, split reproducibly, write atomically, never touch the source.

PH2 is prepared once per session (``prepared_ph2`` in conftest); corruptions are made on
copies of ham10000-mini in tmp_path. Only three tests start the CLI in a subprocess.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from flexunet.data.organize import prepare_dataset, run_from_config
from flexunet.data.sources import FolderSource
from flexunet.errors import ConfigError, DataError
from tests.helpers import SHARED_DATA

BINARY = {"0,0,0": 0, "255,255,255": 1}
SPLIT_SIZES = {"train": 105, "valid": 30, "test": 15}



def _rows(output: Path) -> list[dict[str, str]]:
    with (output / "split.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file (links followed) under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def ham(tmp_path: Path) -> Path:
    """A writable copy of ham10000-mini (6 pairs)."""
    return Path(shutil.copytree(SHARED_DATA / "ham10000-mini", tmp_path / "ham"))


@pytest.fixture
def broken(ham: Path) -> Path:
    """ham10000-mini with a mask without image, a truncated JPEG and a colour not in rgb_map."""
    shutil.copy(ham / "masks" / "ISIC_0024340.png", ham / "masks" / "ISIC_9999999.png")
    jpeg = ham / "images" / "ISIC_0024355.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    mask = ham / "masks" / "ISIC_0024357.png"
    with Image.open(mask) as img:
        rgb = img.convert("RGB")
    rgb.putpixel((5, 5), (255, 0, 0))
    rgb.save(mask)
    return ham


BROKEN_FILES = ("ISIC_9999999.png", "ISIC_0024355.jpg", "ISIC_0024357.png")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``flexunet-prepare ARGS`` in ``cwd``; stderr also lists every imported module."""
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flexunet.commands.prepare", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


# --------------------------------------------------------------------------- PH2


@pytest.mark.shared_data
def test_ph2_layout_split_csv_and_statistics(prepared_ph2: Path) -> None:
    rows = _rows(prepared_ph2)
    assert len(rows) == 150
    assert list(rows[0]) == ["file", "split", "lesion_id", "mask", "lesion_fraction"]
    assert Counter(r["split"] for r in rows) == SPLIT_SIZES
    for split, size in SPLIT_SIZES.items():
        images = sorted(p.name for p in (prepared_ph2 / split / "images").iterdir())
        masks = sorted(p.name for p in (prepared_ph2 / split / "masks").iterdir())
        assert len(images) == size
        assert [Path(m).stem for m in masks] == [Path(i).stem for i in images]
        assert images == sorted(r["file"] for r in rows if r["split"] == split)
    assert all(0.0 < float(r["lesion_fraction"]) < 1.0 for r in rows)
    assert not (prepared_ph2 / "train" / "images" / "IMD002.jpg").is_symlink()
    with Image.open(prepared_ph2 / "statistics.png") as img:
        assert img.format == "PNG" and img.width > 500


@pytest.mark.shared_data
def test_second_run_with_reversed_listing_gives_identical_split_csv(
    prepared_ph2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run sees every folder listed in reverse order and still splits identically."""
    listed = []
    original = Path.iterdir

    def reversed_iterdir(self: Path):
        listed.append(self.name)
        return iter(sorted(original(self), reverse=True))

    monkeypatch.setattr(Path, "iterdir", reversed_iterdir)
    output = tmp_path / "again"
    prepare_dataset(SHARED_DATA / "ph2", output, rgb_map=BINARY, link="symlink")
    assert {"images", "masks"} <= set(listed)
    assert (output / "split.csv").read_bytes() == (prepared_ph2 / "split.csv").read_bytes()
    link = output / "train" / "images" / _rows(output)[0]["file"]
    assert link.is_symlink() and link.resolve().parent == (SHARED_DATA / "ph2" / "images").resolve()


# --------------------------------------------------------------------------- lesion groups


@pytest.mark.shared_data
def test_metadata_keeps_each_lesion_in_one_split(ham: Path, tmp_path: Path) -> None:
    stems = sorted(p.stem for p in (ham / "images").iterdir())
    lesions = ["HAM_A", "HAM_A", "HAM_A", "HAM_B", "HAM_B", "HAM_C"]
    metadata = tmp_path / "HAM10000_metadata.csv"
    metadata.write_text(
        "lesion_id,image_id,dx\n"
        + "".join(f"{lesion},{stem},nv\n" for lesion, stem in zip(lesions, stems, strict=True))
    )
    output = tmp_path / "out"
    prepare_dataset(ham, output, rgb_map=BINARY, metadata=metadata)

    rows = _rows(output)
    splits_of = {}
    for row in rows:
        splits_of.setdefault(row["lesion_id"], set()).add(row["split"])
        assert (output / row["split"] / "images" / row["file"]).is_file()
    assert set(splits_of) == {"HAM_A", "HAM_B", "HAM_C"}
    assert all(len(s) == 1 for s in splits_of.values()), splits_of
    source = FolderSource(ham, metadata=metadata)  # data=folder gives the same split
    for split in ("train", "valid", "test"):
        expected = sorted(r["file"] for r in rows if r["split"] == split)
        assert sorted(p.image.name for p in source.pairs(split)) == expected


# --------------------------------------------------------------------------- checking


@pytest.mark.shared_data
def test_check_only_cli_lists_every_bad_file(broken: Path, tmp_path: Path) -> None:
    before = _hashes(broken)
    result = _cli("source=ham", "check_only=true", f"hydra.run.dir={tmp_path / 'run'}",
                  cwd=tmp_path)
    assert result.returncode != 0
    for name in BROKEN_FILES:
        assert name in result.stdout, result.stdout
    assert "3 problem(s) in 3 file(s)" in result.stdout
    assert "1 mask(s) without an image" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert "tensorflow" not in imported and "keras" not in imported
    assert _hashes(broken) == before


@pytest.mark.shared_data
def test_check_only_ok_writes_nothing(
    ham: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = sorted(tmp_path.rglob("*"))
    with caplog.at_level(logging.INFO, logger="flexunet.data.organize"):
        rows = prepare_dataset(ham, tmp_path / "out", rgb_map=BINARY, check_only=True)
    assert rows == []
    assert "6 pairs OK" in caplog.text
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.shared_data
def test_failed_prepare_leaves_source_identical_and_writes_nothing(
    broken: Path, tmp_path: Path
) -> None:
    before = _hashes(broken)
    output = tmp_path / "out"
    with pytest.raises(DataError) as err:
        prepare_dataset(broken, output, rgb_map=BINARY)
    for name in BROKEN_FILES:
        assert name in str(err.value)
    assert "nothing was written" in str(err.value)
    assert _hashes(broken) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ham"]


@pytest.mark.shared_data
def test_failure_while_writing_leaves_no_partial_output(
    ham: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _hashes(ham)
    copy2, calls = shutil.copy2, []

    def failing_copy2(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", failing_copy2)
    with pytest.raises(DataError, match="No space left"):
        prepare_dataset(ham, tmp_path / "out", rgb_map=BINARY)
    assert _hashes(ham) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ham"]  # no out, no temp folder


# --------------------------------------------------------------------------- output safety


@pytest.mark.shared_data
def test_refuses_non_empty_output(ham: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"not empty \(1 entries: notes.txt\).*overwrite=true"):
        prepare_dataset(ham, output, rgb_map=BINARY)
    assert [p.name for p in output.iterdir()] == ["notes.txt"]


@pytest.mark.shared_data
@pytest.mark.parametrize("first_link", ["symlink", "hardlink"])
def test_overwrite_replaces_links_without_writing_through(
    ham: Path, tmp_path: Path, first_link: str, caplog: pytest.LogCaptureFixture
) -> None:
    """overwrite=true adds and replaces files, deletes nothing, and never alters the source."""
    before = _hashes(ham)
    output = tmp_path / "out"
    prepare_dataset(ham, output, rgb_map=BINARY, link=first_link)
    image = output / "train" / "images" / _rows(output)[0]["file"]
    assert image.is_symlink() if first_link == "symlink" else image.stat().st_nlink == 2
    (output / "notes.txt").write_text("mine")
    stale = output / "test" / "images" / "OLD_0000001.jpg"
    stale.write_bytes(b"from an older split")
    with caplog.at_level(logging.WARNING, logger="flexunet.data.organize"):
        prepare_dataset(ham, output, rgb_map=BINARY, link="copy", overwrite=True)
    assert "test/images/OLD_0000001.jpg" in caplog.text
    assert (output / "notes.txt").read_text() == "mine" and stale.is_file()
    assert not image.is_symlink() and image.stat().st_nlink == 1
    assert _hashes(ham) == before


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"link": "move"}, "link='move'"),
        ({"fractions": {"train": 0.8, "val": 0.2}}, "unknown split"),
        ({"fractions": {"train": 0.8, "valid": 0.3}}, "sum to 1"),
        ({"rgb_map": {"0": 0, "255": 2}}, "num_classes"),
    ],
)
def test_bad_options_are_config_errors(ham: Path, options: dict, message: str) -> None:
    output = ham.parent / "out"
    with pytest.raises(ConfigError, match=message):
        prepare_dataset(ham, output, **{"rgb_map": BINARY, **options})
    assert not output.exists()


@pytest.mark.shared_data
def test_output_must_be_set_and_outside_the_source(ham: Path) -> None:
    with pytest.raises(ConfigError, match="output is not set"):
        prepare_dataset(ham, None, rgb_map=BINARY)
    with pytest.raises(ConfigError, match="inside its images/"):
        prepare_dataset(ham, ham / "images" / "split", rgb_map=BINARY)
    with pytest.raises(ConfigError, match="source .* is inside the output"):
        prepare_dataset(ham, ham.parent, rgb_map=BINARY, overwrite=True)
    assert not (ham / "images" / "split").exists()


# --------------------------------------------------------------------------- config and CLI


@pytest.mark.shared_data
def test_config_paths_are_relative_to_the_callers_cwd(compose, ham: Path, tmp_path: Path) -> None:
    cfg = compose(["source=ham", "output=prepared/ham", "fractions.test=0.2",
                   "fractions.valid=0.1"], config_name="prepare")
    assert cfg.task_name == "prepare" and cfg.link == "copy" and cfg.seed == 137
    rows = run_from_config(cfg, cwd=tmp_path)
    assert Counter(r.split for r in rows) == {"train": 4, "valid": 1, "test": 1}
    assert (tmp_path / "prepared" / "ham" / "split.csv").is_file()


@pytest.mark.shared_data
def test_cli_prepares_relative_paths_then_refuses_to_overwrite(ham: Path, tmp_path: Path) -> None:
    first = _cli("source=ham", "output=out", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "6 pairs OK" in first.stdout
    written = _hashes(tmp_path / "out")
    assert len(written) == 2 + 2 * 6  # split.csv, statistics.png, 6 images, 6 masks
    assert list((tmp_path / "outputs" / "prepare" / "runs").glob("*/prepare.log"))

    second = _cli("source=ham", "output=out", cwd=tmp_path)
    assert second.returncode == 1
    assert "output folder is not empty" in second.stdout
    assert "Traceback" not in second.stdout + second.stderr
    assert _hashes(tmp_path / "out") == written
