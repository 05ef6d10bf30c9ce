"""Images/s of ``flexunet-train`` itself on PH2 (135 training images at 128x128, batch 4).

Runs flexunet-train (model=flexunet_cpu: 128x128, 16 filters, kernel 5, 5 levels; PH2 split
90/10/0; flips and 90-degree rotations; batch 4) for a few epochs with an EpochTimer callback,
and reports for every epoch after the first: the training steps' rate and the whole epoch's
rate (validation, checkpoints, backup, plots and the other callbacks included). Variants run
alternately, so their ratios come from one run; a variant is a comma-separated list of
environment settings (NAME=VALUE) and flexunet-train overrides (a dotted key: key=value):

    python benchmarks/train_rate.py
    python benchmarks/train_rate.py --variant TF_ENABLE_ONEDNN_OPTS=0 --epochs 3
    # the predecessor's settings: oneDNN off, TensorFlow pinned to one thread
    python benchmarks/train_rate.py --variant \
        TF_ENABLE_ONEDNN_OPTS=0,runtime.intra_op_threads=1,runtime.inter_op_threads=1
    python benchmarks/train_rate.py -- data/augment=default train.batch_size=8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PH2 = REPO.parent / "shared" / "data" / "ph2"


def parse_variant(text: str) -> tuple[dict[str, str], list[str]]:
    """``A=1,x.y=2`` -> environment ``{"A": "1"}`` and overrides ``["x.y=2"]``."""
    env, overrides = {}, []
    for item in text.split(","):
        key, _, value = item.partition("=")
        if "." in key or "/" in key:
            overrides.append(item)
        else:
            env[key] = value
    return env, overrides


def run_once(env: dict[str, str], overrides: list[str], epochs: int) -> dict:
    """One flexunet-train run; epoch and training-step seconds from its EpochTimer."""
    run_dir = Path(tempfile.mkdtemp(prefix="train_rate_"))
    try:
        cmd = [
            sys.executable, "-c", "from flexunet.commands.train import main; main()",
            "model=flexunet_cpu", "data=folder", f"data.source.root={PH2}",
            "data.source.fractions={train: 0.9, valid: 0.1, test: 0.0}", "data/augment=flips",
            "train.batch_size=4", f"train.epochs={epochs}", f"hydra.run.dir={run_dir}",
            "+train.callbacks.timer._target_=flexunet.bench.measure.EpochTimer",
            f"+train.callbacks.timer.output={run_dir}/epochs.json", *overrides,
        ]
        proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        return json.loads((run_dir / "epochs.json").read_text())
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--images", type=int, default=135, help="training images per epoch")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=VALUE[,key.path=VALUE...]: a variant's environment, overrides")
    parser.add_argument("overrides", nargs="*", help="extra flexunet-train overrides")
    args = parser.parse_args()
    variants = {"project defaults": ({}, [])}
    for text in args.variant:
        variants[text] = parse_variant(text)
    print(f"flexunet-train on {PH2}, {args.images} training images, batch 4, {args.epochs} "
          f"epochs (the first is not counted); load {os.getloadavg()}", flush=True)
    epochs: dict[str, list[float]] = {name: [] for name in variants}
    steps: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (env, overrides) in variants.items():
            times = run_once(env, [*args.overrides, *overrides], args.epochs)
            epochs[name] += times["epoch_s"][1:]
            steps[name] += times["train_s"][1:]
            print(f"  {name}: epoch s {[round(t, 2) for t in times['epoch_s']]}, training "
                  f"steps s {[round(t, 2) for t in times['train_s']]}; load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{'variant':<40} {'steps img/s (best, median)':>27} "
          f"{'epoch img/s (best, median)':>27}")
    for name in variants:
        n = args.images
        s, e = steps[name], epochs[name]
        print(f"{name:<40} {n / min(s):>13.2f} {n / statistics.median(s):>13.2f} "
              f"{n / min(e):>13.2f} {n / statistics.median(e):>13.2f}")


if __name__ == "__main__":
    main()
