"""Streaming tf.data input pipeline: decode, map mask colours, resize, augment, batch.

Nothing is held in memory beyond the prefetch buffer: each element is read from disk when the
model needs it, so memory does not grow with the dataset. Masks are mapped to class indices at
their original size and only then resized with nearest-neighbour interpolation, so no
interpolated colour ever reaches the colour map. Albumentations transforms image and mask with
one random draw; validation data is never augmented.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import tensorflow as tf
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig

from flexunet.data.masks import decode_mask
from flexunet.data.pairing import Pair
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError


def read_pair(
    pair: Pair,
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    tolerance: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and class-index mask (H, W) uint8, both resized to ``size`` (w, h)."""
    image = load_image_rgb(pair.image)
    mask = decode_mask(pair.mask, rgb_map, tolerance)
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but image {pair.image} is "
            f"{image.shape[1]}x{image.shape[0]}; they must have the same size"
        )
    if image.shape[1::-1] != tuple(size):
        shrinking = image.shape[1] > size[0]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    return image, mask


def check_transform_args(node: Any, where: str = "data.augment") -> None:
    """Reject arguments an albumentations transform does not take.

    albumentations 2.x only warns about unknown or outdated 1.x arguments (``always_apply``,
    ``alpha_affine``, ...) and then ignores them; here they are configuration errors.
    """
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            check_transform_args(item, f"{where}[{i}]")
    elif isinstance(node, DictConfig):
        target = node.get("_target_")
        if isinstance(target, str) and target.startswith("albumentations."):
            params = inspect.signature(get_class(target).__init__).parameters
            unknown = [k for k in node if not k.startswith("_") and k not in params]
            if unknown:
                allowed = ", ".join(p for p in params if p != "self")
                raise ConfigError(
                    f"{where}: {target} has no argument(s) {', '.join(unknown)} "
                    f"(albumentations {A.__version__} takes: {allowed})"
                )
        for key in node:
            if not str(key).startswith("_"):
                check_transform_args(node[key], f"{where}.{key}")


def build_augment(cfg: DictConfig | None, seed: int) -> A.BaseCompose | None:
    """Instantiate an albumentations pipeline from config, checked strictly, seeded."""
    if cfg is None or (isinstance(cfg, DictConfig) and len(cfg) == 0):
        return None
    check_transform_args(cfg)
    augment = instantiate(cfg, _convert_="all")
    if not isinstance(augment, A.BaseCompose):
        augment = A.Compose([augment])
    augment.set_random_seed(seed)
    return augment


def make_dataset(
    pairs: Sequence[Pair],
    *,
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    num_classes: int,
    batch_size: int,
    tolerance: int = 0,
    augment: A.BaseCompose | None = None,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    num_parallel_calls: int = 2,
    prefetch: int = 2,
) -> tf.data.Dataset:
    """A batched dataset of (float32 image 0-255, one-hot mask) for ``model.fit``.

    For ``num_classes == 1`` (sigmoid head) the target is the 0/1 lesion map with one channel.
    ``num_parallel_calls`` and ``prefetch`` are fixed, not autotuned: the autotuner stalled
    for seconds at epoch boundaries on small CPUs.
    """
    pairs = list(pairs)
    width, height = size

    def load(index: np.int64) -> tuple[np.ndarray, np.ndarray]:
        image, mask = read_pair(pairs[int(index)], size, rgb_map, tolerance)
        if augment is not None:
            out = augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def to_tensors(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = tf.numpy_function(load, [index], [tf.uint8, tf.uint8], stateful=True)
        image = tf.ensure_shape(tf.cast(image, tf.float32), (height, width, 3))
        mask = tf.ensure_shape(mask, (height, width))
        if num_classes == 1:
            target = tf.cast(mask[..., None] > 0, tf.float32)
        else:
            target = tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
        return image, target

    ds = tf.data.Dataset.range(len(pairs))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(to_tensors, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False).prefetch(prefetch)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.map_parallelization = False
    return ds.with_options(options)


def load_arrays(
    pairs: Sequence[Pair],
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    tolerance: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A few pairs as stacked arrays (images float32 0-255, masks uint8); for previews."""
    loaded = [read_pair(p, size, rgb_map, tolerance) for p in pairs]
    images = np.stack([im for im, _ in loaded]).astype(np.float32)
    masks = np.stack([m for _, m in loaded])
    return images, masks
