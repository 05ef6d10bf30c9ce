"""``evaluate_after``: a finished run scores its own split into RUN/eval_SPLIT/."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from flexunet.commands.evaluate import evaluate_run
from flexunet.models import build_flexunet
from tests.run_helpers import compose_train, fake_run


def test_scores_the_runs_split_with_the_options(tmp_path: Path, data_dir: Path) -> None:
    model = build_flexunet(64, 64, base_filters=4, base_kernels=(3, 3), num_layers=3)
    run_dir = fake_run(tmp_path / "run", data_dir, model)
    cfg = compose_train(run_dir, data_dir, ["debug=fast"])  # data.limit: 8 pairs per split
    options = {"split": "test", "tta": "flips", "postprocess": "largest_component"}
    cfg = OmegaConf.merge(cfg, {"evaluate_after": options})
    result = evaluate_run(cfg, run_dir)
    report = json.loads((run_dir / "eval_test" / "evaluation.json").read_text())
    assert report["mean"] == result["mean"]
    assert report["checkpoint"] == str(run_dir / "checkpoints" / "best.keras")
    assert {k: report["options"][k] for k in options} == options
    source = instantiate(cfg.data.source, _convert_="all")
    assert report["data"]["limit"] is None
    assert report["count"] == len(source.pairs("test"))

