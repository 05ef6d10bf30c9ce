"""Training images/s of the published FlexUNet (512x512, 8 levels, 11x11 kernels, 16 filters,
126,809,218 parameters) on random tensors: float32 vs mixed precision, with and without XLA.

Run through ``benchmarks/gpu.sh`` (it checks the environment first). Each precision/XLA pair
runs in a fresh process (the mixed-precision policy is global; XLA caches and GPU memory are
per process); inside it every batch size is warmed up before it is timed.

    python benchmarks/gpu_speed.py                      # published model, batches 2 and 8
    python benchmarks/gpu_speed.py --smoke              # 64x64 3-level model: a CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CONFIGS = [  # (precision, XLA); XLA last: its compilation is the slowest part
    ("float32", False), ("mixed_float16", False), ("float32", True), ("mixed_float16", True),
]
PUBLISHED = {"size": 512, "levels": 8, "kernel": 11, "filters": 16}
SMOKE = {"size": 64, "levels": 3, "kernel": 3, "filters": 4}


def worker(opts: dict) -> list[dict]:
    """Time ``opts["steps"]`` training steps per batch size after a warm-up; in this process."""
    import keras
    import numpy as np
    import tensorflow as tf

    from flexunet.models import build_flexunet
    from flexunet.training.metrics import LesionDice

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.mixed_precision.set_global_policy(opts["precision"])
    keras.utils.set_random_seed(0)
    size = opts["size"]
    model = build_flexunet(
        size, size, num_classes=2, base_filters=opts["filters"], base_kernels=opts["kernel"],
        num_layers=opts["levels"],
    )
    model.compile(
        optimizer=keras.optimizers.Adam(7e-5, clipvalue=0.5),
        loss=keras.losses.CategoricalCrossentropy(), metrics=[LesionDice()],
        jit_compile=opts["xla"],
    )
    results = []
    for batch in opts["batches"]:
        rng = np.random.default_rng(0)
        x = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32))
        y = tf.one_hot(rng.integers(0, 2, (batch, size, size)), 2)
        ds = tf.data.Dataset.from_tensors((x, y)).repeat()
        row = {"batch": batch}
        try:
            start = time.perf_counter()
            model.fit(ds, steps_per_epoch=opts["warmup"], epochs=1, verbose=0)
            row["warmup_s"] = time.perf_counter() - start
            start = time.perf_counter()
            model.fit(ds, steps_per_epoch=opts["steps"], epochs=1, verbose=0)
            row["img_s"] = batch * opts["steps"] / (time.perf_counter() - start)
        except tf.errors.ResourceExhaustedError:
            row["error"] = "out of memory"
        if tf.config.list_physical_devices("GPU"):
            row["peak_gib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
            tf.config.experimental.reset_memory_stats("GPU:0")
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps (CPU check)")
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    parser.add_argument("--timeout", type=float, default=115,
                        help="seconds per precision/XLA pair (4 pairs: under 8 minutes)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    model = SMOKE if args.smoke else PUBLISHED
    steps, warmup = (2, 1) if args.smoke else (args.steps, args.warmup)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p
    ), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    print(f"model {model}; batches {args.batches}; {steps} timed steps after {warmup}", flush=True)
    rows = []
    for precision, xla in CONFIGS:
        opts = {**model, "precision": precision, "xla": xla, "batches": args.batches,
                "steps": steps, "warmup": warmup}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(opts)], env=env,
                capture_output=True, text=True, timeout=args.timeout, check=False,
            )
            if proc.returncode == 0:
                results = json.loads(proc.stdout.strip().splitlines()[-1])
            else:
                tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
                results = [{"batch": b, "error": tail[0][:80]} for b in args.batches]
        except subprocess.TimeoutExpired:
            results = [{"batch": b, "error": f"over {args.timeout:.0f} s"} for b in args.batches]
        for r in results:
            rows.append((precision, xla, r))
            print(f"  {precision:<14} xla={xla!s:<5} {json.dumps(r)}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    ref = {r["batch"]: r["img_s"] for p, x, r in rows if (p, x) == CONFIGS[0] and "img_s" in r}
    print(f"\n{'precision':<14} {'XLA':<5} {'batch':>5} {'img/s':>8} {'x fp32':>6} "
          f"{'warm-up s':>9} {'peak GiB':>8}")
    for precision, xla, r in rows:
        if "error" in r:
            print(f"{precision:<14} {xla!s:<5} {r['batch']:>5} {r['error']}")
            continue
        speedup = r["img_s"] / ref[r["batch"]] if r["batch"] in ref else float("nan")
        peak = f"{r['peak_gib']:>8.1f}" if "peak_gib" in r else f"{'-':>8}"
        print(f"{precision:<14} {xla!s:<5} {r['batch']:>5} {r['img_s']:>8.2f} {speedup:>6.2f} "
              f"{r['warmup_s']:>9.1f} {peak}")


if __name__ == "__main__":
    main()
