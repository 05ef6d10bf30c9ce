"""The GPU check behind ``benchmarks/gpu_check.sh`` (run it through that script).

For each precision (float32, mixed_float16) and batch (2, 8): ``flexunet-train`` on JAX with
``data.loader=py_dataset`` for two epochs of ``--steps`` steps on synthetic 512x512 data (the
first epoch compiles; the second is timed from train.log's epoch line), peak GPU memory
(nvidia-smi, polled, with JAX's preallocation off), and a bare Keras loop
(``train_on_batch`` on random tensors) on the same model in a fresh process. Then the input
pipeline alone (PyDataset, this machine's cores as workers) over the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PRECISIONS = {name: f"train.mixed_precision={name}" for name in ("float32", "mixed_float16")}
# The GPU-sized published model, or a tiny one that checks the script on a CPU.
TINY = ["model.image_width=64", "model.image_height=64", "model.base_filters=4",
        "model.base_kernels=[3,3]", "model.num_layers=3"]
# Callbacks that write a 500 MB model or images each epoch are not what is timed here.
QUIET = ["~train.callbacks.checkpoint_best", "~train.callbacks.checkpoint_last",
         "~train.callbacks.backup", "~train.callbacks.epoch_change_infer",
         "~train.callbacks.plots"]


def peak_gpu_mib(stop: threading.Event, result: list[float]) -> None:
    """Poll nvidia-smi until ``stop``; the largest memory.used (MiB) lands in ``result``."""
    if shutil.which("nvidia-smi") is None:
        return
    while not stop.is_set():
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, check=False,
        ).stdout.split()
        if out:
            result.append(max(float(v) for v in out))
        time.sleep(0.2)


def train_run(overrides: list[str], batch: int, steps: int, timeout: float, env: dict) -> dict:
    """flexunet-train for 2 epochs of ``steps``; images/s of epoch 2 and peak GPU MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        args = [*overrides, f"train.batch_size={batch}", "train.epochs=2",
                f"train.steps_per_epoch={steps}", "train.validation_steps=1",
                f"hydra.run.dir={run_dir}"]
        stop, memory = threading.Event(), []
        poller = threading.Thread(target=peak_gpu_mib, args=(stop, memory))
        poller.start()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "flexunet.commands.train", *args], env=env,
                capture_output=True, text=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"over {timeout:.0f} s"}
        finally:
            stop.set()
            poller.join()
        log = (run_dir / "train.log").read_text() if (run_dir / "train.log").is_file() else ""
        epoch = re.search(r"epoch 2/2 - ([0-9.]+)s", log)
        if proc.returncode != 0 or epoch is None:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]}
        return {"train_img_s": round(batch * steps / float(epoch[1]), 2),
                "peak_gpu_mib": max(memory) if memory else None}


def bare_loop(opts: dict) -> dict:
    """In this process: the composed model trained with train_on_batch on random tensors."""
    import keras
    import numpy as np
    from hydra.utils import instantiate

    cfg = compose(opts["overrides"])
    keras.mixed_precision.set_global_policy(opts["precision"])
    keras.utils.set_random_seed(0)
    model = instantiate(cfg.model, _convert_="all")
    model.compile(optimizer=instantiate(cfg.train.optimizer, _convert_="all"),
                  loss=instantiate(cfg.train.loss, _convert_="all"))
    batch, size = opts["batch"], (cfg.model.image_height, cfg.model.image_width)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, *size, 3)).astype(np.float32)
    y = np.eye(cfg.mask.num_classes, dtype=np.float32)[
        rng.integers(0, cfg.mask.num_classes, (batch, *size))]
    for _ in range(2):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(opts["steps"]):
        loss = model.train_on_batch(x, y)
    float(np.asarray(loss).ravel()[0])  # wait for the device
    return {"bare_img_s": round(batch * opts["steps"] / (time.perf_counter() - start), 2)}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from flexunet.commands import CONFIG_DIR
    from flexunet.config import register_configs

    register_configs()
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return hydra_compose("train", overrides=overrides, return_hydra_config=False)


def pipeline_rate(overrides: list[str], batch: int, workers: int) -> float:
    """Images/s of the PyDataset loader alone (training augmentation, cache off)."""
    from flexunet.bench.measure import batches
    from flexunet.training import build

    cfg = compose([*overrides, f"train.batch_size={batch}", "data.cache_mb=0",
                   f"data.num_parallel_calls={workers}", f"data.prefetch={2 * workers}"])
    _, pairs = build.load_splits(cfg, ("train",))
    ds = build.build_dataset(cfg, pairs["train"], train=True, repeat=False, cache=None)
    start, count = time.perf_counter(), 0
    for images, _ in batches(ds):
        count += len(images)
    return round(count / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=int(os.environ.get("STEPS", 20)))
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ.get("GPU_CHECK_TIMEOUT", 70)))
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(json.dumps(bare_loop(json.loads(args.bare))))
        return
    tiny = bool(os.environ.get("GPU_CHECK_TINY"))
    data_dir = Path(tempfile.mkdtemp(prefix="flexunet-gpu-data-"))
    count = 24 if tiny else 96
    overrides = [
        "experiment=skin_cancer_512", "data=synthetic", f"data.source.count={count}",
        "data.source.width=512", "data.source.height=512", f"paths.data_dir={data_dir}",
        "runtime.backend=jax", "data.loader=py_dataset", "train.verbose=0",
        *(TINY if tiny else []),
    ]
    steps = 2 if tiny else args.steps
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    os.environ.update(env)
    print(f"model: {'tiny 64x64 (GPU_CHECK_TINY)' if tiny else 'published 512'}; "
          f"{steps} timed steps; load {os.getloadavg()}", flush=True)
    rows = []
    for precision, switch in PRECISIONS.items():
        for batch in (2, 8):
            row = {"precision": precision, "batch": batch}
            row.update(train_run([*overrides, *QUIET, switch], batch, steps, args.timeout, env))
            opts = {"overrides": overrides, "precision": precision, "batch": batch,
                    "steps": steps}
            try:
                proc = subprocess.run(
                    [sys.executable, __file__, "--bare", json.dumps(opts)], env=env,
                    capture_output=True, text=True, timeout=args.timeout, check=False,
                )
                row.update(json.loads(proc.stdout.strip().splitlines()[-1])
                           if proc.returncode == 0 else
                           {"bare_error": (proc.stderr.strip().splitlines() or ["?"])[-1][:80]})
            except subprocess.TimeoutExpired:
                row["bare_error"] = f"over {args.timeout:.0f} s"
            if row.get("train_img_s") and row.get("bare_img_s"):
                row["train_vs_bare"] = round(row["train_img_s"] / row["bare_img_s"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    workers = os.cpu_count() or 1
    rate = pipeline_rate(overrides, 8, workers)
    print(f"\ninput pipeline (py_dataset, {workers} workers, augmentation, no cache): "
          f"{rate} images/s")
    print(f"\n{'precision':<14} {'batch':>5} {'train img/s':>11} {'bare img/s':>10} "
          f"{'train/bare':>10} {'peak GPU MiB':>12}")
    for r in rows:
        print(f"{r['precision']:<14} {r['batch']:>5} {r.get('train_img_s', '-')!s:>11} "
              f"{r.get('bare_img_s', '-')!s:>10} {r.get('train_vs_bare', '-')!s:>10} "
              f"{r.get('peak_gpu_mib', '-')!s:>12}")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
