"""experiment=ph2: the shared PH2 folder, its documented 120/15/15 split, the time budget."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate


def test_defaults(compose) -> None:
    cfg = compose(["experiment=ph2"])
    assert cfg.data.source.root == f"{cfg.paths.root_dir}/../shared/data/ph2"
    assert dict(cfg.data.source.fractions) == {"train": 0.8, "valid": 0.1, "test": 0.1}
    assert cfg.model.image_width % 16 == 0 and cfg.model.num_layers == 5
    assert cfg.train.callbacks.time_limit.minutes <= 40  # + data check, evaluation: 45 min
    assert cfg.train.callbacks.early_stop is None
    evaluate_after = cfg.evaluate_after
    assert (evaluate_after.split, evaluate_after.tta, evaluate_after.postprocess) == (
        "test", "flips", "largest_component",
    )
    assert list(cfg.tags) == ["ph2", "cpu"]
    assert compose([]).evaluate_after is None


@pytest.mark.shared_data
def test_split_of_the_150_images(compose) -> None:
    cfg = compose(["experiment=ph2"])
    source = instantiate(cfg.data.source, _convert_="all")
    splits = {s: [p.stem for p in source.pairs(s)] for s in ("train", "valid", "test")}
    assert [len(v) for v in splits.values()] == [120, 15, 15]
    assert len(set().union(*splits.values())) == 150
    assert splits["test"] == [  # docs/results.md reports these 15 images
        "IMD004", "IMD032", "IMD108", "IMD126", "IMD147", "IMD204", "IMD206", "IMD243",
        "IMD348", "IMD356", "IMD360", "IMD390", "IMD396", "IMD406", "IMD410",
    ]
