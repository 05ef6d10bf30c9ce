"""Input-pipeline throughput (no model): images/s of ``make_dataset`` and the cost of each step.

    python benchmarks/pipeline_speed.py                            # PH2, 128x128, default augment
    python benchmarks/pipeline_speed.py --compare /tmp/pipeline_old.py --augment flips
    python benchmarks/pipeline_speed.py --parallel 1 2 --cv2-threads 1 2

``--compare FILE...`` loads other versions of ``flexunet/data/pipeline.py`` (e.g. ``git show
HEAD~1:src/flexunet/data/pipeline.py > /tmp/pipeline_old.py``) and measures all of them in
alternating rounds, so before/after ratios come from one run. Best-of-rounds is reported: on a
shared machine the fastest round is the one least disturbed by other processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_module(path: Path, name: str) -> ModuleType:
    """Import a pipeline module from a file path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_stages(pipeline: ModuleType, pairs: list, size: tuple[int, int], augment) -> dict:
    """Milliseconds per image of decode+resize (``read_pair``) and of the augmentation."""
    from flexunet.data.masks import parse_rgb_map

    rgb_map = parse_rgb_map({"0,0,0": 0, "255,255,255": 1})
    start = time.perf_counter()
    loaded = [pipeline.read_pair(p, size, rgb_map) for p in pairs]
    read_ms = 1000 * (time.perf_counter() - start) / len(pairs)
    start = time.perf_counter()
    for image, mask in loaded:
        if augment is not None:
            augment(image=image, mask=mask)
    return {"read_ms": read_ms, "augment_ms": 1000 * (time.perf_counter() - start) / len(pairs)}


def time_dataset(pipeline: ModuleType, pairs: list, size: tuple[int, int], augment,
                 batch: int, parallel: int) -> float:
    """Images/s of one pass over ``make_dataset`` (the first batch is not timed)."""
    from flexunet.data.masks import parse_rgb_map

    ds = pipeline.make_dataset(
        pairs, size=size, rgb_map=parse_rgb_map({"0,0,0": 0, "255,255,255": 1}),
        num_classes=2, batch_size=batch, augment=augment, shuffle=True, seed=0,
        num_parallel_calls=parallel,
    )
    it = iter(ds)
    first = next(it)
    count, start = 0, time.perf_counter()
    for images, _ in it:
        count += int(images.shape[0])
    del first
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ph2"))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--augment", default="default", help="conf/data/augment/NAME.yaml")
    parser.add_argument("--parallel", type=int, nargs="+", default=[2])
    parser.add_argument("--cv2-threads", type=int, nargs="+", default=[-1],
                        help="cv2.setNumThreads values to try (-1: OpenCV's default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, nargs="*", default=[],
                        help="other versions of pipeline.py to measure too")
    args = parser.parse_args()

    import cv2
    from omegaconf import OmegaConf

    import flexunet.data.pipeline as current
    from flexunet.data.pairing import pair_files

    pairs = pair_files(Path(args.data) / "images", Path(args.data) / "masks").pairs[: args.images]
    size = (args.size, args.size)
    aug_cfg = OmegaConf.load(REPO / "conf" / "data" / "augment" / f"{args.augment}.yaml")
    augment = current.build_augment(aug_cfg, seed=0)
    versions = {"current": current}
    for i, path in enumerate(args.compare):
        versions[path.stem] = load_module(path, f"pipeline_compare_{i}")
    default_threads = cv2.getNumThreads()
    print(f"{len(pairs)} pairs from {args.data} at {args.size}x{args.size}, augment "
          f"{args.augment}, batch {args.batch}; cv2 threads {default_threads}; "
          f"load {os.getloadavg()}")

    best: dict[tuple, float] = {}
    stages: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, module in versions.items():
            result = time_stages(module, pairs[:16], size, augment)
            stages[name] = {k: min(v, stages.get(name, {}).get(k, v)) for k, v in result.items()}
            for parallel in args.parallel:
                for threads in args.cv2_threads:
                    cv2.setNumThreads(default_threads if threads < 0 else threads)
                    key = (name, parallel, threads)
                    rate = time_dataset(module, pairs, size, augment, args.batch, parallel)
                    best[key] = max(rate, best.get(key, 0.0))
    cv2.setNumThreads(default_threads)
    print(f"load after: {os.getloadavg()}\n")
    width = max(len(name) for name in versions)
    print(f"{'version':<{width}} {'read+resize ms':>14} {'augment ms':>10}")
    for name, s in stages.items():
        print(f"{name:<{width}} {s['read_ms']:>14.2f} {s['augment_ms']:>10.2f}")
    ref = best[("current", args.parallel[0], args.cv2_threads[0])]
    print(f"\n{'version':<{width}} {'parallel':>8} {'cv2 thr':>7} {'img/s':>8} {'x first':>7}")
    for (name, parallel, threads), rate in best.items():
        print(f"{name:<{width}} {parallel:>8} {threads:>7} {rate:>8.1f} {rate / ref:>7.2f}")


if __name__ == "__main__":
    main()
