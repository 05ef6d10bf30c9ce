"""Progress bars: the long loops show one on stderr from PROGRESS_MIN_IMAGES items on."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexunet.data.synthetic import generate_synthetic
from flexunet.data.validate import check_pairs
from flexunet.progress import PROGRESS_MIN_IMAGES


def test_synthetic_data_and_the_data_check_show_a_bar_for_many_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flexunet.data.pairing import pair_files

    few = generate_synthetic(tmp_path / "few", count=2, width=64, height=48)
    assert "synthetic data" not in capsys.readouterr().err
    many = generate_synthetic(tmp_path / "many", count=PROGRESS_MIN_IMAGES, width=64, height=48)
    err = capsys.readouterr().err
    assert "synthetic data: 100%" in err and f"{PROGRESS_MIN_IMAGES}/{PROGRESS_MIN_IMAGES}" in err
    rgb_map = {(0, 0, 0): 0, (255, 255, 255): 1}
    assert check_pairs(pair_files(few / "images", few / "masks").pairs, rgb_map) == []
    assert "check" not in capsys.readouterr().err
    assert check_pairs(pair_files(many / "images", many / "masks").pairs, rgb_map) == []
    assert "check: 100%|" in capsys.readouterr().err
