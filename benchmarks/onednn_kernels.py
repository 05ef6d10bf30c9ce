"""Where a training step's CPU time goes, kernel by kernel: oneDNN's own timings, summarised.

Runs ``flexunet-train`` with ``ONEDNN_VERBOSE=1`` (by default the peer benchmark's settings:
the 135/15 PH2 pairs at 128x128, no augmentation, batch 4, 2 epochs) and reads back every
primitive oneDNN executed: its kind (convolution forward / backward-data / backward-weights,
reorder, pooling, ...), its implementation (e.g. ``brg_conv_fwd:avx512_core_bf16``), its
shape and its milliseconds. It prints each kind's share of oneDNN's time, each convolution
direction's achieved GFLOP/s, and the costliest convolution shapes, so that a slow kernel (a
reference fallback, a thin layer that runs far below the machine's matmul rate) shows by
name.

    python benchmarks/onednn_kernels.py                       # ~1 min on 2 cores (not run in CI)
    python benchmarks/onednn_kernels.py -- train.mixed_precision=float32
    python benchmarks/onednn_kernels.py --log verbose.txt     # summarise a log already written

TensorFlow runs two operators at once on two cores (its inter-op pool), so the kernels' times
add up to more than the wall time, and a kernel that shares the cores with another one runs
at about half its rate alone.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PH2 = REPO.parent / "shared" / "data" / "ph2"
SHAPE_FIELD = re.compile(r"([a-z]+)(\d+)")


def run_verbose(overrides: list[str], epochs: int, log: Path) -> None:
    """Train with oneDNN's verbose log on; its lines (stdout) go to ``log``."""
    with tempfile.TemporaryDirectory(prefix="onednn_kernels_") as run_dir:
        cmd = [
            sys.executable, "-c", "from flexunet.commands.train import main; main()",
            "model=flexunet_cpu", "data=folder", f"data.source.root={PH2}",
            "data.source.fractions={train: 0.9, valid: 0.1, test: 0.0}", "data/augment=none",
            "train.batch_size=4", f"train.epochs={epochs}", f"hydra.run.dir={run_dir}",
            *overrides,
        ]
        with log.open("w") as out:
            proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "ONEDNN_VERBOSE": "1"},
                                  stdout=out, stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"flexunet-train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def convolution_flops(shape: str) -> int:
    """Multiply-adds x 2 of one convolution call from oneDNN's shape text
    (``mb4_ic16oc16_ih128oh128kh5..._iw128ow128kw5...``); the same count for every direction."""
    fields = dict(SHAPE_FIELD.findall(shape))
    dims = ("mb", "ic", "oc", "oh", "ow", "kh", "kw")
    if not all(d in fields for d in dims):
        return 0
    mb, ic, oc, oh, ow, kh, kw = (int(fields[d]) for d in dims)
    return 2 * mb * ic * oc * oh * ow * kh * kw


def summarise(log: Path, top: int) -> str:
    """Tables of oneDNN's executed primitives in ``log``."""
    by_kind: dict[str, float] = defaultdict(float)
    by_direction: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # ms, FLOPs
    by_shape: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for line in log.read_text(errors="replace").splitlines():
        fields = line.split(",")
        # onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,FORMATS,ATTRS,AUX,SHAPE,MS
        if len(fields) < 13 or fields[0] != "onednn_verbose" or fields[3] != "exec":
            continue
        kind, impl, prop, shape = fields[5], fields[6], fields[7], fields[-2]
        ms = float(fields[-1])
        by_kind[f"{kind} {prop}"] += ms
        if kind == "convolution":
            flops = convolution_flops(shape)
            by_direction[prop][0] += ms
            by_direction[prop][1] += flops
            entry = by_shape[(prop, impl, shape.split("_iw")[0])]
            entry[0] += ms
            entry[1] += flops
            entry[2] += 1
    total = sum(by_kind.values())
    if not total:
        return f"no oneDNN primitive executions in {log} (is oneDNN on: TF_ENABLE_ONEDNN_OPTS=1?)"
    lines = [f"oneDNN kernels: {total / 1000:.2f} s in all", "",
             "| kind | ms | share |", "|---|---|---|"]
    lines += [f"| {k} | {ms:.0f} | {ms / total:.1%} |"
              for k, ms in sorted(by_kind.items(), key=lambda item: -item[1])]
    lines += ["", "| convolution direction | ms | GFLOP/s |", "|---|---|---|"]
    lines += [f"| {prop} | {ms:.0f} | {flops / ms / 1e6:.0f} |"
              for prop, (ms, flops) in sorted(by_direction.items(), key=lambda item: -item[1][0])]
    lines += ["", "| direction | implementation | shape | calls | ms per call | GFLOP/s |",
              "|---|---|---|---|---|---|"]
    ranked = sorted(by_shape.items(), key=lambda item: -item[1][0])[:top]
    lines += [f"| {prop} | {impl} | {shape} | {calls:.0f} | {ms / calls:.2f} | "
              f"{flops / ms / 1e6:.0f} |" for (prop, impl, shape), (ms, flops, calls) in ranked]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="extra flexunet-train overrides")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log", type=Path, help="summarise this verbose log instead of training")
    parser.add_argument("--top", type=int, default=15, help="convolution shapes to list")
    args = parser.parse_args()
    if args.log:
        print(summarise(args.log, args.top))
        return
    with tempfile.TemporaryDirectory(prefix="onednn_log_") as folder:
        log = Path(folder) / "verbose.txt"
        run_verbose(args.overrides, args.epochs, log)
        print(summarise(log, args.top))


if __name__ == "__main__":
    main()
