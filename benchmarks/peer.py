"""The predecessor's own trainer beside ``flexunet-train``: seconds per epoch, peak RSS, Dice.

Runs, back to back, on the same PH2 pairs (135 training / 15 validation: flexunet's seeded
split with fractions 0.9/0.1/0), the same model (128x128, 16 filters, kernel 5, 5 levels,
dropout 0.05, no BatchNorm), batch 4, no augmentation, the same Adam (learning rate 1e-3,
clipvalue 0.5), the same number of epochs:

1. the predecessor's ``TensorFlowFlexUNetTrainer`` as shipped (it pins TensorFlow to one
   intra-op and one inter-op thread), on TensorFlow 2.15 in its own virtualenv;
2. the same with its pin set to 2 threads;
3. ``flexunet-train`` with its defaults (``data/augment=none`` and the split aside).

Each trainer's epoch is timed whole (training steps, validation and every callback: from one
epoch's start to the next's); the report gives the median of epochs 2..N, the peak RSS of
its process, and the validation Dice after the last epoch, computed here the same way for
both (foreground Dice of the argmax prediction per validation image, against the masks as
flexunet resizes them, averaged), plus each trainer's own logged validation Dice.

The predecessor's code is copied from ``--peer`` into a temporary folder at run time and
never into the project. What changes to make it run, all in a wrapper written next to the
copy (its files are not edited):

- ``tf.keras.optimizers.Adam`` is the legacy Adam: the trainer disables eager execution,
  which TensorFlow 2.15's new optimizer refuses.
- ``glob.glob`` returns sorted lists: its loader pairs images and masks by the order of two
  unsorted globs, which on most file systems pairs the wrong files.
- an epoch timer is appended to its callbacks, and after training the wrapper saves the
  final model's predictions on the validation images.
- the 2-thread variant sets TensorFlow's two thread pools to 2 after the trainer's module
  has pinned them to 1 (before TensorFlow starts).

Its config is written from the shipped ``train_eval_infer.config`` with the model, data,
batch, epochs and optimizer above and the folders in the temporary directory.

The predecessor's virtualenv (TensorFlow 2.15.1, NumPy < 2, OpenCV, Pillow, matplotlib,
tqdm, SciPy; about 2.1 GB) is made once in ``--venv`` (default ~/.cache/flexunet-peer/venv)
and reused; creating it needs the package index.

    python benchmarks/peer.py                      # about 5 minutes on 2 cores
    python benchmarks/peer.py --epochs 4 --only flexunet
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
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PEER_PACKAGES = [
    "tensorflow==2.15.1", "numpy<2", "opencv-python-headless", "pillow", "matplotlib", "tqdm",
    "scipy",
]
VARIANTS = ("shipped", "threads2", "flexunet")
LEARNING_RATE, CLIPVALUE, BATCH = 1e-3, 0.5, 4

WRAPPER = '''
"""Runs the predecessor's trainer unchanged but for what benchmarks/peer.py documents."""
import glob, json, os, sys, time
src, config, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, src)
import numpy as np
import tensorflow as tf

_glob = glob.glob
glob.glob = lambda *a, **k: sorted(_glob(*a, **k))  # pair images and masks by name
import TensorFlowFlexUNet  # pins both thread pools to 1 at import
import TensorFlowFlexModel
# graph mode needs the legacy Adam; patched where compile_model looks it up
TensorFlowFlexModel.tf.keras.optimizers.Adam = tf.keras.optimizers.legacy.Adam
if threads != 1:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

class EpochTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.marks = []
    def on_epoch_begin(self, epoch, logs=None):
        self.marks.append(time.perf_counter())
    def on_train_end(self, logs=None):
        self.marks.append(time.perf_counter())

timer = EpochTimer()
Model = TensorFlowFlexUNet.TensorFlowFlexUNet
create_callbacks = Model.create_callbacks
Model.create_callbacks = lambda self: [timer] + create_callbacks(self)
model = Model(config)
model.train()
history = json.loads(json.load(open(model.HISTORY_JSON)).replace("'", '"'))
x_valid, _ = model.dataset.create(model.valid_images_dir, model.valid_masks_dir)
pred = np.argmax(model.model.predict(x_valid, batch_size=4), axis=-1).astype(np.uint8)
names = [os.path.splitext(os.path.basename(p))[0]
         for p in glob.glob(model.valid_images_dir + "/*.jpg")]
np.save(os.path.join(out, "pred.npy"), pred)
json.dump({"epoch_s": [b - a for a, b in zip(timer.marks, timer.marks[1:])],
           "names": names, "own_val_dice": history["val_dice_coef_multiclass"][-1],
           "intra": tf.config.threading.get_intra_op_parallelism_threads(),
           "inter": tf.config.threading.get_inter_op_parallelism_threads()},
          open(os.path.join(out, "result.json"), "w"))
'''


def ensure_venv(venv: Path) -> Path:
    """The predecessor's virtualenv's python, creating the virtualenv when missing."""
    python = venv / "bin" / "python"
    marker = venv / ".flexunet-peer-ready"
    if marker.is_file():
        return python
    print(f"creating {venv} ({', '.join(PEER_PACKAGES)}): a few minutes, once", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    marker.write_text(" ".join(PEER_PACKAGES) + "\n")
    return python


def split(data: Path) -> dict[str, list]:
    """flexunet's train/valid pairs of ``data`` (fractions 0.9/0.1/0, split_seed 137)."""
    from flexunet.data.sources import FolderSource, split_pairs

    source = FolderSource(str(data), fractions={"train": 0.9, "valid": 0.1, "test": 0.0})
    return {name: split_pairs(source, name, None) for name in ("train", "valid")}


def write_peer_config(shipped: Path, path: Path, work: Path, epochs: int) -> None:
    """The shipped config with this benchmark's model, data, schedule and folders."""
    values = {
        "image_width": "128", "image_height": "128", "base_filters": "16",
        "base_kernels": "(5,5)", "num_layers": "5", "dropout_rate": "0.05",
        "normalization": "False", "learning_rate": str(LEARNING_RATE),
        "clipvalue": str(CLIPVALUE), "epochs": str(epochs), "batch_size": str(BATCH),
        "patience": "10", "model_dir": f'"{work}/models/"', "eval_dir": f'"{work}/eval/"',
        "epoch_change_infer_dir": f'"{work}/epoch_change_infer"',
    }
    dirs = {
        "train": ("train/images", "train/masks"), "valid": ("valid/images", "valid/masks"),
        "test": ("valid/images", "valid/masks"), "infer": ("mini_test/images", None),
    }
    lines, section = [], ""
    for line in shipped.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[] ")
        key = stripped.split("=", 1)[0].strip() if "=" in stripped else None
        if key in values and not stripped.startswith(";"):
            line = f"{key} = {values[key]}"
        elif key in ("images_dir", "masks_dir", "output_dir") and section in dirs:
            images, masks = dirs[section]
            target = {"images_dir": images, "masks_dir": masks, "output_dir": "mini_test_out"}
            line = f'{key} = "{work / "data" / target[key]}/"' if target[key] else line
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def lay_out(pairs: dict[str, list], data: Path) -> None:
    """The predecessor's folders: {train,valid}/{images,masks} and 6 images to infer on
    after every epoch (links to the shared files)."""
    for name, items in pairs.items():
        for kind in ("images", "masks"):
            (data / name / kind).mkdir(parents=True)
        for pair in items:
            (data / name / "images" / pair.image.name).symlink_to(pair.image)
            (data / name / "masks" / f"{pair.stem}.png").symlink_to(pair.mask)
    (data / "mini_test" / "images").mkdir(parents=True)
    for pair in pairs["valid"][:6]:
        (data / "mini_test" / "images" / pair.image.name).symlink_to(pair.image)


def run_child(cmd: list[str], cwd: Path, log: Path, env: dict | None = None) -> float:
    """Run ``cmd`` with output to ``log``; its peak RSS in MiB. Raises on failure."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}); its log {log}:\n"
                           + log.read_text()[-3000:])
    return usage.ru_maxrss / 1024


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over images of the foreground Dice of class maps (1 when both are empty)."""
    scores = []
    for p, t in zip(pred, truth, strict=True):
        p, t = p == 1, t == 1
        total = p.sum() + t.sum()
        scores.append(1.0 if total == 0 else 2 * (p & t).sum() / total)
    return float(np.mean(scores))


def run_predecessor(python: Path, peer: Path, work: Path, threads: int, epochs: int) -> dict:
    """One run of the predecessor's trainer in ``work``; its epochs, RSS and predictions."""
    src = work / "src"
    if not src.exists():
        shutil.copytree(peer / "src", src)
    (work / "wrapper.py").write_text(WRAPPER)
    config = work / "train_eval_infer.config"
    write_peer_config(peer / "train_eval_infer.config", config, work, epochs)
    out = work / f"out_{threads}"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    rss = run_child(
        [str(python), str(work / "wrapper.py"), str(src), str(config), str(threads), str(out)],
        work, work / f"predecessor_{threads}.log", env,
    )
    result = json.loads((out / "result.json").read_text())
    result.update(rss_mib=rss, pred=np.load(out / "pred.npy"))
    return result


def run_flexunet(data: Path, work: Path, epochs: int, overrides: list[str]) -> dict:
    """One flexunet-train run on the same split; its epochs, RSS and predictions."""
    import keras

    run_dir = work / "flexunet_run"
    cmd = [
        sys.executable, "-c", "from flexunet.commands.train import main; main()",
        "data=folder", f"data.source.root={data}",
        "data.source.fractions={train: 0.9, valid: 0.1, test: 0.0}", "data/augment=none",
        f"train.batch_size={BATCH}", f"train.epochs={epochs}",
        f"train.optimizer.learning_rate={LEARNING_RATE}", f"train.optimizer.clipvalue={CLIPVALUE}",
        f"hydra.run.dir={run_dir}",
        "+train.callbacks.timer._target_=flexunet.bench.measure.EpochTimer",
        f"+train.callbacks.timer.output={run_dir}/epochs.json", *overrides,
    ]
    rss = run_child(cmd, REPO, work / "flexunet.log")
    times = json.loads((run_dir / "epochs.json").read_text())
    info = json.loads((run_dir / "run_info.json").read_text())
    model = keras.models.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    return {
        "epoch_s": times["epoch_s"], "rss_mib": rss, "model": model,
        "own_val_dice": info["final"]["val_lesion_dice"], "precision": info.get("precision"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--peer", type=Path, default=SHARED / "peer" / "predecessor")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "ph2")
    parser.add_argument("--venv", type=Path,
                        default=Path.home() / ".cache" / "flexunet-peer" / "venv")
    parser.add_argument("--only", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("overrides", nargs="*", help="extra flexunet-train overrides")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not counted)")
    from flexunet.training.runtime import configure_environment

    configure_environment()
    from flexunet.data.masks import parse_rgb_map
    from flexunet.data.pipeline import load_arrays

    python = ensure_venv(args.venv) if {"shipped", "threads2"} & set(args.only) else None
    pairs = split(args.data)
    # The reference masks of both Dice values: flexunet's resize of the shared files.
    images, truth = load_arrays(
        pairs["valid"], (128, 128), parse_rgb_map({"0,0,0": 0, "255,255,255": 1}), 0, 64_000_000
    )
    work = Path(tempfile.mkdtemp(prefix="flexunet_peer_"))
    print(f"{len(pairs['train'])}/{len(pairs['valid'])} PH2 pairs, {args.epochs} epochs, "
          f"batch {BATCH}; work folder {work}; load {os.getloadavg()}", flush=True)
    lay_out(pairs, work / "data")
    rows = {}
    try:
        for name in args.only:
            start, load = time.monotonic(), os.getloadavg()[0]
            if name == "flexunet":
                result = run_flexunet(args.data, work, args.epochs, args.overrides)
                probs = result.pop("model").predict(images, batch_size=BATCH, verbose=0)
                result["dice"] = dice(probs.argmax(-1), truth)
            else:
                threads = 1 if name == "shipped" else 2
                result = run_predecessor(python, args.peer, work, threads, args.epochs)
                order = [pair.stem for pair in pairs["valid"]]
                pred = result.pop("pred")
                result["dice"] = dice(pred[[result["names"].index(s) for s in order]], truth)
            result["s_per_epoch"] = statistics.median(result["epoch_s"][1:])
            rows[name] = result
            print(f"  {name}: epochs s {[round(t, 2) for t in result['epoch_s']]}, peak RSS "
                  f"{result['rss_mib']:.0f} MiB, {time.monotonic() - start:.0f} s in all; load "
                  f"{load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    labels = {
        "shipped": "predecessor as shipped (1+1 threads)",
        "threads2": "predecessor, 2+2 threads",
        "flexunet": "flexunet-train",
    }
    print(f"\n{'trainer':<38} {'s/epoch':>8} {'vs shipped':>10} {'vs 2 thr':>9} "
          f"{'peak RSS MiB':>12} {'val Dice':>8} {'own val Dice':>12}")
    for name, r in rows.items():
        ratios = [
            f"{rows[ref]['s_per_epoch'] / r['s_per_epoch']:.2f}x" if ref in rows else "-"
            for ref in ("shipped", "threads2")
        ]
        print(f"{labels[name]:<38} {r['s_per_epoch']:>8.2f} {ratios[0]:>10} {ratios[1]:>9} "
              f"{r['rss_mib']:>12.0f} {r['dice']:>8.4f} {r['own_val_dice']:>12.4f}")
    if "flexunet" in rows:
        print(f"flexunet precision: {rows['flexunet']['precision']}")
    print(f"median of epochs 2-{args.epochs}, whole epochs (validation and callbacks); "
          f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
