"""Sweep TensorFlow CPU settings for FlexUNet training and inference, one subprocess each.

oneDNN (``TF_ENABLE_ONEDNN_OPTS``) is read when TensorFlow is imported and thread pools are
fixed when it initialises, so every setting runs in a fresh process. Each worker builds the
model, compiles it as ``flexunet-train`` does (Adam, CE + Dice, lesion Dice/IoU, accuracy),
warms up, then times training steps on random in-memory tensors, and inference of one image
(batch 1) and of one image with its 4 flips (batch 4, as flip TTA predicts).

    python benchmarks/cpu_settings.py                         # the default sweep, 128/5/k5
    python benchmarks/cpu_settings.py --size 256 --levels 6 --kernel 7 --steps 4
    python benchmarks/cpu_settings.py --only onednn threads   # some groups of settings
    python benchmarks/cpu_settings.py --only batchnorm --size 160 --steps 24 --rounds 3

Settings are compared within one run (ratios), interleaved over ``--rounds`` passes with the
best of each kept: on a shared machine the fastest pass is the least disturbed one. Note the
machine load printed with the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ON, OFF = {"TF_ENABLE_ONEDNN_OPTS": "1"}, {"TF_ENABLE_ONEDNN_OPTS": "0"}
# group -> [(name, environment, worker options)]; the first row run is every ratio's reference.
SWEEPS: dict[str, list[tuple[str, dict[str, str], dict]]] = {
    "onednn": [
        ("oneDNN off (TF default here)", OFF, {}),
        ("oneDNN on", ON, {}),
    ],
    "threads": [
        ("oneDNN on, intra 1 / inter 1", ON, {"intra": 1, "inter": 1}),
        ("oneDNN on, intra 2 / inter 1", ON, {"intra": 2, "inter": 1}),
        ("oneDNN on, intra 2 / inter 2", ON, {"intra": 2, "inter": 2}),
    ],
    "xla": [
        ("oneDNN on, jit_compile", ON, {"jit": True}),
        ("oneDNN off, jit_compile", OFF, {"jit": True}),
    ],
    "precision": [
        ("oneDNN on, mixed_bfloat16", ON, {"precision": "mixed_bfloat16"}),
    ],
    "onednn_env": [
        ("oneDNN on, caller thread", {**ON, "TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD": "1"}, {}),
        ("oneDNN on, system allocator", {**ON, "TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"}, {}),
        ("oneDNN on, steps_per_execution 4", ON, {"steps_per_execution": 4}),
    ],
    "batch": [
        ("oneDNN on, batch 2", ON, {"batch": 2}),
        ("oneDNN on, batch 8", ON, {"batch": 8}),
    ],
    "batchnorm": [  # the BatchNorm FlexUNet of experiment=ph2 / dermoscopy_cpu (--size 160)
        ("bf16, Keras' BatchNormalization", ON,
         {"precision": "mixed_bfloat16", "normalization": True, "keras_batchnorm": True}),
        ("bf16, fused BatchNormalization", ON,
         {"precision": "mixed_bfloat16", "normalization": True}),
    ],
}


def worker(opts: dict) -> dict:
    """Time training steps and batch-1 inference in this (fresh) process."""
    import keras
    import numpy as np
    import tensorflow as tf

    from flexunet.models import build_flexunet
    from flexunet.training.losses import CEDiceLoss
    from flexunet.training.metrics import LesionDice, LesionIoU

    if opts.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(opts["intra"])
    if opts.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(opts["inter"])
    keras.mixed_precision.set_global_policy(opts.get("precision", "float32"))
    keras.utils.set_random_seed(0)
    if opts.get("keras_batchnorm"):  # the reference: Keras' own, unfused BatchNormalization
        import flexunet.models.flexunet as flexunet_module

        flexunet_module.BatchNormalization = keras.layers.BatchNormalization
    size, batch, steps = opts["size"], opts["batch"], opts["steps"]
    model = build_flexunet(
        size, size, base_filters=opts["filters"], base_kernels=opts["kernel"],
        num_layers=opts["levels"], normalization=bool(opts.get("normalization")),
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, clipvalue=0.5), loss=CEDiceLoss(),
        metrics=[LesionDice(), LesionIoU(), keras.metrics.CategoricalAccuracy()],
        jit_compile=bool(opts.get("jit")), steps_per_execution=opts.get("steps_per_execution", 1),
    )
    rng = np.random.default_rng(0)
    n = batch * steps
    x = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 2, (n, size, size)), 2).astype(np.float32)
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)  # warm-up
    train_s = []
    for _ in range(opts["reps"]):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        train_s.append(time.perf_counter() - start)
    predict = tf.function(lambda t: model(t, training=False), jit_compile=bool(opts.get("jit")))
    result = {"train_img_s": n / min(train_s)}
    for infer_batch in (1, 4):  # one image; one image with 4 flips (TTA)
        inputs = x[:infer_batch]
        for _ in range(2):
            predict(inputs)
        times = []
        for _ in range(opts["infer_reps"]):
            start = time.perf_counter()
            predict(inputs).numpy()
            times.append(time.perf_counter() - start)
        result[f"infer_b{infer_batch}_ms"] = 1000 * min(times)
    return result


def run_worker(env: dict[str, str], opts: dict, timeout: float) -> dict:
    """Run :func:`worker` in a fresh interpreter with ``env`` added to the environment."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    cmd = [sys.executable, __file__, "--worker", json.dumps(opts)]
    try:
        out = subprocess.run(
            cmd, env=full_env, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    except subprocess.CalledProcessError as err:
        return {"error": err.stderr.strip().splitlines()[-1] if err.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--kernel", type=int, default=5)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="training steps per timed fit")
    parser.add_argument("--reps", type=int, default=2, help="timed fits per worker (best kept)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="passes over all settings, interleaved (best kept)")
    parser.add_argument("--infer-reps", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--only", nargs="*", choices=sorted(SWEEPS), help="sweep groups to run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    base = {
        "size": args.size, "levels": args.levels, "kernel": args.kernel, "filters": args.filters,
        "batch": args.batch, "steps": args.steps, "reps": args.reps,
        "infer_reps": args.infer_reps,
    }
    print(f"model {args.size}x{args.size}, {args.levels} levels, kernel {args.kernel}, "
          f"{args.filters} filters, batch {args.batch}; load before: {os.getloadavg()}")
    settings = [row for group in args.only or list(SWEEPS) for row in SWEEPS[group]]
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, env, extra in settings:
            result = run_worker(env, {**base, **extra}, args.timeout)
            print(f"  {name:<34} {json.dumps(result)}  load {os.getloadavg()[0]:.2f}", flush=True)
            if "error" in result:
                best.setdefault(name, result)
                continue
            kept = best.get(name, {})
            if "error" in kept:
                kept = {}
            best[name] = {
                k: (max if k == "train_img_s" else min)(v, kept.get(k, v))
                for k, v in result.items()
            }
    print(f"\nload after: {os.getloadavg()}; best of {args.rounds} round(s)\n")
    ref = best[settings[0][0]]
    print(f"{'setting':<34} {'train img/s':>11} {'x ref':>6} {'infer b=1 ms':>12} {'x ref':>6} "
          f"{'infer b=4 ms':>12} {'x ref':>6}")
    for name, r in best.items():
        if "error" in r:
            print(f"{name:<34} {r['error']}")
            continue
        print(
            f"{name:<34} {r['train_img_s']:>11.2f} {r['train_img_s'] / ref['train_img_s']:>6.2f} "
            f"{r['infer_b1_ms']:>12.1f} {r['infer_b1_ms'] / ref['infer_b1_ms']:>6.2f} "
            f"{r['infer_b4_ms']:>12.1f} {r['infer_b4_ms'] / ref['infer_b4_ms']:>6.2f}"
        )


if __name__ == "__main__":
    main()
