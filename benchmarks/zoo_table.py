"""The model-zoo comparison table of docs/models.md, from a model sweep and a benchmark.

Reads SWEEP_DIR/summary.csv (one row per job of ``flexunet-train -m experiment=ph2
model=A,B,...``), each job's ``eval_test/evaluation.json`` (written by ``evaluate_after``) and
its best checkpoint (for the parameter count), and optionally a ``flexunet-bench`` report
run with ``bench.zoo`` (training images/s per model); prints one Markdown row per model:

    python benchmarks/zoo_table.py SWEEP_DIR --bench BENCH_RUN/benchmark.json \
        --alias cpu_128=flexunet_ph2

``--alias BENCH_NAME=MODEL`` names the model config a ``bench.models`` entry timed (the
primary entry of ``flexunet-bench`` is ``cpu_128``, whatever ``model=`` composed).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def model_choice(overrides: str) -> str:
    """The ``model=NAME`` of a job's overrides (``flexunet`` when absent)."""
    for item in overrides.split():
        if item.startswith("model="):
            return item.split("=", 1)[1]
    return "flexunet"


def rows(sweep_dir: Path, rates: dict[str, float]) -> list[str]:
    import keras

    import flexunet.models  # noqa: F401  (registers the custom layers for loading)

    lines = []
    with (sweep_dir / "summary.csv").open(newline="") as f:
        jobs = list(csv.DictReader(f))
    for job in jobs:
        run = sweep_dir / job["job"]
        name = model_choice(job["overrides"])
        ckpt = run / "checkpoints" / "best.keras"
        params = keras.saving.load_model(ckpt, compile=False).count_params() if ckpt.is_file() \
            else None
        report = run / "eval_test" / "evaluation.json"
        test = json.loads(report.read_text())["mean"]["dice"] if report.is_file() else None
        valid = float(job["best_value"]) if job["best_value"] else None
        rate = rates.get(name)
        lines.append(
            f"| {name} | {params:,} | " if params is not None else f"| {name} | - | "
        )
        lines[-1] += " | ".join([
            f"{rate:.2f}" if rate is not None else "-", job["epochs"] or "-",
            f"{valid:.3f}" if valid is not None else "-",
            f"{test:.3f}" if test is not None else "-", job["status"],
        ]) + " |"
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--bench", type=Path, help="benchmark.json of flexunet-bench bench.zoo")
    parser.add_argument("--alias", action="append", default=[], help="BENCH_NAME=MODEL")
    args = parser.parse_args()
    aliases = dict(item.split("=", 1) for item in args.alias)
    rates: dict[str, float] = {}
    if args.bench:
        report = json.loads(args.bench.read_text())
        rates = {aliases.get(name, name): r["train_img_s"] for name, r in report["models"].items()}
    print("| model | parameters | train img/s | epochs | valid lesion Dice (best) | "
          "test lesion Dice | status |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows(args.sweep_dir, rates)))


if __name__ == "__main__":
    main()
