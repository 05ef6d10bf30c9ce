"""experiment=dermoscopy_cpu: three sources under paths.shared_data, folds as one sweep, a
time budget within 45 minutes, the prediction options its runs lend to flexunet-eval."""

from __future__ import annotations

from collections import Counter

import pytest
from hydra.types import RunMode
from hydra.utils import instantiate


def test_folds_are_one_sweep_within_the_time_budget(compose) -> None:
    cfg = compose(["experiment=dermoscopy_cpu"])
    assert cfg.hydra.mode == RunMode.MULTIRUN
    folds = cfg.data.source.folds
    swept = [int(f) for f in str(cfg.hydra.sweeper.params["data.source.fold"]).split(",")]
    assert swept == list(range(folds))
    assert folds * cfg.train.callbacks.time_limit.minutes <= 38  # + checks, evaluations: 45
    assert cfg.train.callbacks.lr_reducer.minutes == cfg.train.callbacks.time_limit.minutes
    after = cfg.evaluate_after
    assert (after.split, after.tta, after.postprocess) == ("test", "flips", "largest_component")
    assert cfg.mask.threshold == 128
    loss = instantiate(cfg.train.loss)
    assert loss.boundary_weight > 0 and loss.boundary_width >= 1  # the border band is on


def test_one_key_moves_every_source(compose) -> None:
    cfg = compose(["experiment=dermoscopy_cpu", "paths.shared_data=/elsewhere/data"])
    roots = {name: s.root for name, s in cfg.data.source.sources.items()}
    assert roots == {
        "ph2": "/elsewhere/data/ph2", "isic2017": "/elsewhere/data/isic2017",
        "ham10000": "/elsewhere/data/ham10000-mini",
    }
    ph2 = compose(["experiment=ph2", "paths.shared_data=/elsewhere/data"])
    assert ph2.data.source.root == "/elsewhere/data/ph2"


@pytest.mark.shared_data
def test_each_source_keeps_its_test_split_across_folds(compose) -> None:
    tests, valids = [], []
    for fold in range(3):
        cfg = compose(["experiment=dermoscopy_cpu", f"data.source.fold={fold}"])
        source = instantiate(cfg.data.source, _convert_="all")
        tests.append(source.pairs("test"))
        valids.append({p.stem for p in source.pairs("valid")})
    assert tests[0] == tests[1] == tests[2]
    assert Counter(p.source for p in tests[0]) == {"ph2": 15, "isic2017": 15, "ham10000": 1}
    ph2_test = sorted(p.stem for p in tests[0] if p.source == "ph2")
    assert ph2_test[:3] == ["IMD004", "IMD032", "IMD108"]  # experiment=ph2's test images
    assert not valids[0] & valids[1] and not valids[1] & valids[2]
