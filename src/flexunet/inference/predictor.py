"""The one predictor: from a checkpoint and an image to class probabilities at the image's size.

``flexunet-eval``, ``flexunet-infer`` and ``flexunet-figure`` predict through
:func:`predict_images` (the one loop over images) with a :class:`Predictor`, so an option such
as flip TTA, tiling or post-processing has the same effect in all of them and its effect on
the metrics is measurable.

Resolution: the image is resized to the model input exactly as in training (INTER_AREA when
shrinking, bilinear otherwise), and the model's *probabilities* are resized back bilinearly to
the original size before the argmax. Resizing the class map with NEAREST instead would turn
each model pixel into a block of 4-5 original pixels (600x450 from 128x128) and give staircase
lesion borders; interpolating probabilities places the border where the model's decision
changes, between model pixels, and never invents a class (the argmax of a convex combination
of probability vectors is a class the model gave nearby).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

from flexunet.data.masks import DEFAULT_MAX_PIXELS
from flexunet.data.resize import resize_image, resize_probabilities
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError
from flexunet.inference.options import POSTPROCESS_MODES, TTA_VIEWS, PredictOptions

# the project's custom layers (BatchNorm, Swin-UNet, TransUNet) must be registered before a
# checkpoint loads
from flexunet.models import normalization, transformer_layers  # noqa: F401
from flexunet.progress import progress

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- checkpoints


def resolve_checkpoint(ckpt_path: str | Path) -> tuple[Path, Path | None]:
    """``(checkpoint file, training run directory or None)`` for a checkpoint or a run dir.

    A run directory gives ``RUN/checkpoints/best.keras``. A checkpoint file inside
    ``RUN/checkpoints/`` of a Hydra run also yields ``RUN``, so its config can be reused.
    """
    path = Path(ckpt_path).expanduser()
    if not path.exists():
        raise ConfigError(
            f"ckpt_path={path}: no such file or directory; give a .keras checkpoint or a "
            "training run directory (outputs/train/runs/...)"
        )
    if path.is_dir():
        best = path / "checkpoints" / "best.keras"
        if not best.is_file():
            found = sorted(p.name for p in (path / "checkpoints").glob("*.keras"))
            hint = "; was the training interrupted before its first epoch ended?"
            if sweep_members(path):
                hint = (
                    "; it is a sweep directory: flexunet-eval, -infer and -figure ensemble "
                    "its runs, this command takes one checkpoint"
                )
            elif found:
                hint = f"; it has {', '.join(found)}: pass one of them as ckpt_path"
            raise ConfigError(f"{path}: run directory has no checkpoints/best.keras{hint}")
        return best, path
    if path.suffix not in (".keras", ".h5"):
        raise ConfigError(f"{path}: not a Keras checkpoint (.keras); give a .keras file")
    run = path.parent.parent
    is_run = path.parent.name == "checkpoints" and (run / ".hydra" / "config.yaml").is_file()
    return path, run if is_run else None


def sweep_members(sweep_dir: Path) -> list[Path]:
    """The run directories of a sweep (``SWEEP/0``, ``SWEEP/1``, ...) that hold a
    ``checkpoints/best.keras``, by job number; a job that failed before its first checkpoint
    is left out with a warning."""
    runs, failed = [], []
    for sub in sweep_dir.iterdir() if sweep_dir.is_dir() else ():
        if not (sub / ".hydra" / "config.yaml").is_file():
            continue
        (runs if (sub / "checkpoints" / "best.keras").is_file() else failed).append(sub)
    if failed and runs:
        log.warning(
            "%s: left out of the ensemble, no checkpoints/best.keras: %s",
            sweep_dir, ", ".join(sorted(p.name for p in failed)),
        )

    def order(path: Path) -> tuple[bool, int, str]:
        return (not path.name.isdigit(), int(path.name) if path.name.isdigit() else 0, path.name)

    return sorted(runs, key=order)


def resolve_members(ckpt_path: str | Path | Sequence[str | Path]) -> list[tuple[Path, Path | None]]:
    """``[(checkpoint file, training run directory or None)]`` of ``ckpt_path``: a checkpoint
    or run directory (one member), a sweep directory (its runs: an ensemble, e.g. the folds
    of ``-m data.source.fold=0,1,2``) or a list of those."""
    if isinstance(ckpt_path, str | Path):
        path = Path(ckpt_path).expanduser()
        if path.is_dir() and not (path / "checkpoints").is_dir():
            runs = sweep_members(path)
            if runs:
                return [resolve_checkpoint(run) for run in runs]
        return [resolve_checkpoint(path)]
    members = [m for item in ckpt_path for m in resolve_members(item)]
    if not members:
        raise ConfigError("ckpt_path=[]: give at least one checkpoint or run directory")
    return members


def load_model(path: str | Path) -> keras.Model:
    """Load a checkpoint in Keras' safe mode (no Lambda or pickled code is deserialised),
    computing in float32 (:func:`in_float32`).

    ``compile=False``: prediction needs neither loss nor optimizer, so a checkpoint whose
    training objects changed still loads.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint file does not exist")
    try:
        return in_float32(keras.saving.load_model(path, safe_mode=True, compile=False))
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors, ...
        raise DataError(f"{path}: cannot load the checkpoint ({exc})") from None


def _float32_policies(node: object) -> object:
    """A copy of a serialised config with every mixed dtype policy replaced by float32."""
    if isinstance(node, dict):
        if node.get("class_name") in {"DTypePolicy", "FloatDTypePolicy"}:
            name = node.get("config", {}).get("name", "")
            if name.startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_policies(item) for item in node]
    return node


def in_float32(model: keras.Model) -> keras.Model:
    """``model`` computing in float32: a model trained in mixed precision (``mixed_bfloat16``
    or ``mixed_float16``) keeps that policy in its layers, so without this a checkpoint would
    predict in bfloat16 (slow on CPUs without bfloat16 units, a little less exact anywhere)
    and exporters would meet mixed dtypes. Its weights are float32 already: the same model is
    rebuilt from its config with float32 policies and given them."""
    if not any(
        layer.dtype_policy.name.startswith("mixed_")
        for layer in model._flatten_layers(include_self=True)
    ):
        return model
    rebuilt = type(model).from_config(_float32_policies(model.get_config()))
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def model_io(model: keras.Model) -> tuple[tuple[int, int], int]:
    """``((width, height), output channels)`` of a model with a fixed RGB input size."""
    _, height, width, channels = model.input_shape
    if height is None or width is None or channels != 3:
        raise ConfigError(
            f"model {model.name!r} takes input {model.input_shape}; prediction needs a fixed "
            "(height, width, 3) input"
        )
    return (int(width), int(height)), int(model.output_shape[-1])


def check_classes(model: keras.Model, num_classes: int, ckpt: Path) -> int:
    """Raise unless the model's head matches ``mask.num_classes``; return the scored classes."""
    channels = model_io(model)[1]
    if channels != num_classes:
        raise ConfigError(
            f"{ckpt}: the model predicts {channels} channel(s) but mask.num_classes="
            f"{num_classes}; use the mask config the model was trained with"
        )
    return max(2, channels)


# --------------------------------------------------------------------------- prediction


def _predict_batch(model: keras.Model, batch: np.ndarray, tta: str | None) -> np.ndarray:
    """(N, h, w, C>=2) probabilities of a float32 batch at the model's input size."""
    if tta == "d4" and batch.shape[1] != batch.shape[2]:
        raise ConfigError(
            f"tta=d4 turns the model input by 90 degrees, which needs a square input; this "
            f"model takes {batch.shape[2]}x{batch.shape[1]}: use tta=flips"
        )
    if tta is None:
        out = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    else:
        views = TTA_VIEWS[tta]
        variants = np.concatenate([np.flip(np.rot90(batch, k, (1, 2)), a) for k, a in views])
        out = np.asarray(model.predict_on_batch(variants), dtype=np.float32)
        n = len(batch)
        out = np.mean(
            [np.rot90(np.flip(out[i * n : (i + 1) * n], a), -k, (1, 2))
             for i, (k, a) in enumerate(views)],
            axis=0,
        )
    if out.shape[-1] == 1:  # sigmoid head: background and lesion channels
        out = np.concatenate([1.0 - out, out], axis=-1)
    return out


def _tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Evenly spread tile offsets covering ``length``, consecutive tiles overlapping >= overlap."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return np.linspace(0, length - tile, count).round().astype(int).tolist()


def _window(height: int, width: int) -> np.ndarray:
    """(h, w, 1) blending weights: sin^2 (Hann) from the tile centre, never exactly 0."""

    def one(n: int) -> np.ndarray:
        return np.maximum(np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2, 1e-3)

    return np.outer(one(height), one(width))[..., None].astype(np.float32)


def _predict_tiled(
    model: keras.Model, image: np.ndarray, tile: tuple[int, int], options: PredictOptions
) -> np.ndarray:
    """Overlapping model-sized tiles, blended with a smooth window (no seams at tile edges)."""
    tile_w, tile_h = tile
    height, width = image.shape[:2]
    window = _window(tile_h, tile_w)
    positions = [
        (y, x)
        for y in _tile_starts(height, tile_h, options.tile_overlap)
        for x in _tile_starts(width, tile_w, options.tile_overlap)
    ]
    total: np.ndarray | None = None
    weight = np.zeros((height, width, 1), np.float32)
    for start in range(0, len(positions), options.batch_size):
        chunk = positions[start : start + options.batch_size]
        batch = np.stack([image[y : y + tile_h, x : x + tile_w] for y, x in chunk])
        probs = _predict_batch(model, batch.astype(np.float32), options.tta)
        if total is None:
            total = np.zeros((height, width, probs.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, probs, strict=True):
            total[y : y + tile_h, x : x + tile_w] += p * window
            weight[y : y + tile_h, x : x + tile_w] += window
    return total / weight


def predict_probabilities(
    model: keras.Model, image: np.ndarray, options: PredictOptions | None = None
) -> np.ndarray:
    """(H, W, C) float32 class probabilities at the ORIGINAL size of a uint8 RGB image.

    ``C >= 2``: a sigmoid model's output becomes (background, lesion). Untiled, the whole
    image is resized to the model input. Tiled, the image is resized by ``tile_scale``
    (1.0: native resolution; a side shorter than the tile is stretched to the tile) and
    covered by overlapping model-sized tiles blended with a smooth window; an image that
    fits in one tile is therefore predicted exactly as untiled. ``tta="flips"`` averages
    identity, horizontal, vertical and both flips of every model input; ``tta="d4"`` the
    eight turns and flips of a square input.
    """
    options = options or PredictOptions()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    height, width = image.shape[:2]
    tile, _ = model_io(model)
    work = tile
    if options.tiled:
        work = (
            max(tile[0], round(width * options.tile_scale)),
            max(tile[1], round(height * options.tile_scale)),
        )
    resized = resize_image(image, work)
    if work == tile:
        probs = _predict_batch(model, resized[None].astype(np.float32), options.tta)[0]
    else:
        probs = _predict_tiled(model, resized, tile, options)
    return resize_probabilities(probs, (width, height))


# --------------------------------------------------------------------------- decisions


def postprocess(class_map: np.ndarray, method: str | None) -> np.ndarray:
    """Clean a class-index map; ``largest_component`` keeps the largest lesion and fills holes.

    The lesion is every pixel of class >= 1 (8-connected). Smaller components become
    background; a hole inside the kept lesion takes the class of its nearest lesion pixel
    (class 1 for binary masks). An empty prediction is returned unchanged.
    """
    if method is None:
        return class_map
    if method not in POSTPROCESS_MODES:
        raise ConfigError(f"postprocess={method!r}: use one of {', '.join(POSTPROCESS_MODES)}")
    labels, count = ndimage.label(class_map > 0, structure=np.ones((3, 3), bool))
    if count == 0:
        return class_map
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = labels == int(np.argmax(sizes))
    kept = np.where(keep, class_map, 0).astype(class_map.dtype)
    filled = ndimage.binary_fill_holes(keep)
    holes = filled & ~keep
    if holes.any():
        _, (rows, cols) = ndimage.distance_transform_edt(~keep, return_indices=True)
        kept[holes] = kept[rows[holes], cols[holes]]
    return kept


def to_class_map(probs: np.ndarray, method: str | None = None) -> np.ndarray:
    """(H, W) uint8 class indices: argmax of the probabilities, then :func:`postprocess`."""
    return postprocess(np.argmax(probs, axis=-1).astype(np.uint8), method)


# --------------------------------------------------------------------------- the loop


@dataclass
class Predictor:
    """Loaded models and the options they predict with: one model, or an ensemble whose
    probabilities are the mean of its members' (each member with the TTA and tiling options;
    post-processing once, on the mean)."""

    models: list[keras.Model]
    options: PredictOptions
    num_classes: int  # classes scored and drawn: the model's channels, at least 2
    checkpoints: list[Path] = field(default_factory=list)  # where the models were loaded from

    @classmethod
    def from_checkpoints(
        cls, ckpts: Sequence[Path], options: PredictOptions, num_classes: int
    ) -> Predictor:
        """Load ``ckpts`` and check that each head predicts ``num_classes`` (mask.num_classes)."""
        models = [load_model(ckpt) for ckpt in ckpts]
        scored = {
            check_classes(model, num_classes, ckpt)
            for model, ckpt in zip(models, ckpts, strict=True)
        }
        return cls(models, options, scored.pop(), [Path(c) for c in ckpts])

    def describe(self) -> str:
        """The checkpoint, or the ensemble's size and first member."""
        if len(self.checkpoints) == 1:
            return str(self.checkpoints[0])
        return f"an ensemble of {len(self.checkpoints)} checkpoints ({self.checkpoints[0]}, ...)"

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) class probabilities of a uint8 RGB image: the mean over the models."""
        probs = predict_probabilities(self.models[0], image, self.options)
        for model in self.models[1:]:
            probs += predict_probabilities(model, image, self.options)
        return probs / len(self.models) if len(self.models) > 1 else probs

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (H, W, C), post-processed class map (H, W)) of a uint8 RGB image."""
        probs = self.probabilities(image)
        return probs, to_class_map(probs, self.options.postprocess)


@dataclass
class Prediction:
    """One image and what the predictor made of it, at the image's original size."""

    path: Path
    image: np.ndarray
    probs: np.ndarray
    class_map: np.ndarray


def predict_images(
    predictor: Predictor,
    paths: Sequence[Path],
    desc: str = "predict",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_error: Callable[[Path, DataError], None] | None = None,
) -> Iterator[Prediction]:
    """Read and predict each image of ``paths`` in order: the loop every command uses.

    An image that cannot be read (unreadable, truncated, not a regular file, over
    ``max_pixels``, ...) raises its :class:`DataError`, unless ``on_error`` is given: then
    ``on_error(path, error)`` is called and the loop goes on with the next image (nothing is
    yielded for the bad one). A progress bar (stderr) is shown from
    :data:`PROGRESS_MIN_IMAGES` images on.
    """
    for path in progress(paths, desc):
        try:
            image = load_image_rgb(path, max_pixels)
        except DataError as exc:
            if on_error is None:
                raise
            on_error(Path(path), exc)
            continue
        probs, class_map = predictor(image)
        yield Prediction(Path(path), image, probs, class_map)
