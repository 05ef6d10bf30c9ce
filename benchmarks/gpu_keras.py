"""Training images/s of the published FlexUNet on a GPU through Keras 3's JAX backend.

For GPU machines without TensorFlow: the FlexUNet builder is plain Keras 3, so the same
model trains under ``KERAS_BACKEND=jax``. "XLA" there means ``jit_compile=True`` (the train
step compiled by XLA) against ``jit_compile=False`` (JAX dispatching each op eagerly).
Each precision/XLA pair runs in a fresh process (the dtype policy is global).

    KERAS_BACKEND=jax python benchmarks/gpu_keras.py            # published 512 model
    KERAS_BACKEND=jax python benchmarks/gpu_keras.py --smoke    # 64x64 3-level check
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
CONFIGS = [("float32", True), ("mixed_float16", True), ("float32", False), ("mixed_float16", False)]
PUBLISHED = {"size": 512, "levels": 8, "kernel": 11, "filters": 16}
SMOKE = {"size": 64, "levels": 3, "kernel": 3, "filters": 4}


def worker(opts: dict) -> list[dict]:
    """Time training steps per batch size after a warm-up, in this process."""
    import keras
    import numpy as np

    from flexunet.models.flexunet import build_flexunet

    keras.mixed_precision.set_global_policy(opts["precision"])
    keras.utils.set_random_seed(0)
    size = opts["size"]
    model = build_flexunet(
        size, size, num_classes=2, base_filters=opts["filters"],
        base_kernels=opts["kernel"], num_layers=opts["levels"],
    )
    model.compile(
        optimizer=keras.optimizers.Adam(7e-5, clipvalue=0.5),
        loss=keras.losses.CategoricalCrossentropy(), jit_compile=opts["xla"],
    )
    rows = []
    for batch in opts["batches"]:
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (batch, size, size))]
        row: dict = {"batch": batch}
        try:
            start = time.perf_counter()
            for _ in range(opts["warmup"]):
                model.train_on_batch(x, y)
            row["warmup_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            for _ in range(opts["steps"]):
                loss = model.train_on_batch(x, y)
            float(np.asarray(loss).ravel()[0])  # wait for the device
            row["img_s"] = round(batch * opts["steps"] / (time.perf_counter() - start), 2)
        except Exception as err:  # out of memory and backend errors end up in the table
            row["error"] = f"{type(err).__name__}: {str(err)[:60]}"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=110)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    model = SMOKE if args.smoke else PUBLISHED
    steps, warmup = (2, 1) if args.smoke else (args.steps, args.warmup)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)}
    env.setdefault("KERAS_BACKEND", "jax")
    print(f"backend {env['KERAS_BACKEND']}; model {model}; {steps} steps after {warmup}")
    results = []
    for precision, xla in CONFIGS:
        opts = {**model, "precision": precision, "xla": xla, "batches": args.batches,
                "steps": steps, "warmup": warmup}
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(opts)], env=env,
                capture_output=True, text=True, timeout=args.timeout, check=False,
            )
            last_error = (proc.stderr.strip().splitlines() or ["?"])[-1][:80]
            rows = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0
                    else [{"batch": b, "error": last_error} for b in args.batches])
        except subprocess.TimeoutExpired:
            rows = [{"batch": b, "error": f"over {args.timeout:.0f} s"} for b in args.batches]
        for row in rows:
            results.append({"precision": precision, "xla": xla, **row})
            print(json.dumps(results[-1]), flush=True)
    base = {r["batch"]: r["img_s"] for r in results
            if (r["precision"], r["xla"]) == CONFIGS[0] and "img_s" in r}
    print(f"\n{'precision':<14} {'XLA':<5} {'batch':>5} {'img/s':>8} {'x fp32+XLA':>10}")
    for r in results:
        speed = r.get("img_s")
        ratio = f"{speed / base[r['batch']]:.2f}" if speed and r["batch"] in base else "-"
        shown = f"{speed:.1f}" if speed else r.get("error", "-")[:30]
        print(f"{r['precision']:<14} {r['xla']!s:<5} {r['batch']:>5} {shown:>8} {ratio:>10}")


if __name__ == "__main__":
    main()
