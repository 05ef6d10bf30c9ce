"""Streaming input pipelines: decode, map mask colours, resize, augment, batch.

Two loaders share every step but the last: :func:`make_dataset` (tf.data) and
:class:`PairBatches` (``keras.utils.PyDataset``: worker threads and a prefetch queue, no
TensorFlow, so the JAX backend trains where TensorFlow is not installed).

Each element is read from disk when the model needs it. Decoded, resized pairs (before
augmentation) are kept in memory up to ``cache_mb`` per dataset, so later epochs skip the
decoding; beyond that budget pairs are decoded every time, so memory stays bounded whatever
the dataset's size. JPEG images are decoded near the model size; mask colours are sampled
with nearest-neighbour (never interpolated) and mapped to class indices, which equals mapping
at the original size and then resizing the class map with NEAREST. Albumentations transforms
image and mask with one random draw; validation data is never augmented. See
docs/performance.md for what each step costs.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import albumentations as A
import cv2
import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from flexunet.data.masks import (
    DEFAULT_MAX_PIXELS,
    _read_plane,
    decode_mask_array,
    load_strict,
    open_header,
    turns_sideways,
    upright,
)
from flexunet.data.pairing import Pair
from flexunet.data.resize import resize_image
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, DataError

if TYPE_CHECKING:
    import tensorflow as tf

#: ``data.loader`` values (auto: :func:`resolve_loader`).
LOADERS = ("auto", "tf_data", "py_dataset")


def resolve_loader(name: str, tensorflow_available: bool, num_processes: int = 1) -> str:
    """``data.loader``: ``auto`` is tf_data when TensorFlow can be imported and one process
    reads the data, else py_dataset (which shards each global batch between processes)."""
    if name not in LOADERS:
        raise ConfigError(f"data.loader={name!r}: use one of {', '.join(LOADERS)}")
    if name == "auto":
        return "tf_data" if tensorflow_available and num_processes == 1 else "py_dataset"
    if name == "tf_data" and not tensorflow_available:
        raise ConfigError("data.loader=tf_data needs TensorFlow, which cannot be imported here: "
                          "use data.loader=py_dataset")
    if name == "tf_data" and num_processes > 1:
        raise ConfigError("data.loader=tf_data reads all data in every process: use "
                          "data.loader=py_dataset with several processes")
    return name


def read_image(
    path: str | Path, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 RGB image decoded near ``size`` (w, h), and the file's own (w, h),
    both upright (the EXIF orientation applied, as a viewer shows the image).

    A JPEG is decoded by libjpeg at the smallest 1/2, 1/4 or 1/8 scale that is still at
    least ``size`` (``Image.draft``): several times cheaper than a full decode when the model
    is much smaller than the image (docs/performance.md), and the DCT-domain reduction is
    itself an anti-aliased downscale. Other formats are decoded at full size (palettes
    expanded, alpha dropped).
    """
    path = Path(path)
    img = open_header(path, "image", max_pixels)
    try:
        if img.format != "JPEG":
            image = load_image_rgb(path, max_pixels)
            return image, (image.shape[1], image.shape[0])
        width, height = img.size
        sideways = turns_sideways(img)  # a JPEG's EXIF is in its header
        img.draft("RGB", (size[1], size[0]) if sideways else tuple(size))
        load_strict(img, path, "image", max_pixels)
        upright(img, path)
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        return np.asarray(rgb, dtype=np.uint8), (height, width) if sideways else (width, height)
    finally:
        img.close()


def read_pair(
    pair: Pair,
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    tolerance: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and class-index mask (H, W) uint8, both upright (EXIF
    orientation) and resized to ``size`` (w, h); files over ``max_pixels`` are refused.

    The mask's colours are sampled with NEAREST (never interpolated) before they are mapped
    to classes: mapping is per pixel, so this equals mapping at the original size and then
    resizing the class map with NEAREST, at a fraction of the cost. Colours of pixels that
    the resize does not sample are checked by the data check before training.
    """
    image, image_size = read_image(pair.image, size, max_pixels)
    plane = _read_plane(Path(pair.mask), "mask", max_pixels)
    mask_size = (plane.shape[1], plane.shape[0])
    if image_size != mask_size:
        raise DataError(
            f"{pair.mask}: mask is {mask_size[0]}x{mask_size[1]} but image {pair.image} is "
            f"{image_size[0]}x{image_size[1]}; they must have the same size"
        )
    size = tuple(size)
    image = resize_image(image, size)
    if mask_size != size:
        plane = cv2.resize(plane, size, interpolation=cv2.INTER_NEAREST)
    return image, decode_mask_array(
        plane, rgb_map, tolerance, source=pair.mask, threshold=threshold
    )


class DecodedCache:
    """Decoded, resized (image, class mask) pairs by index, up to ``max_bytes`` in all.

    Decoding and resizing a pair takes CPU time that, on a machine with few cores, is taken
    from the training step itself, while the resized arrays are small (docs/performance.md).
    Pairs that do not fit the budget are not cached.
    Safe to call from tf.data's parallel map threads; the arrays handed out are read-only.
    A dataset's map function outlives the job that made it (TensorFlow keeps it registered),
    so the owner calls :meth:`clear` when training ends: in-process sweeps would otherwise
    keep every job's pairs.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.bytes = 0
        self.pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.lock = threading.Lock()

    def get(
        self, index: int, read: Callable[[int], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pair at ``index``, from memory or from ``read(index)`` (then kept if it fits)."""
        cached = self.pairs.get(index)
        if cached is not None:
            return cached
        image, mask = read(index)
        size = image.nbytes + mask.nbytes
        with self.lock:
            if index not in self.pairs and self.bytes + size <= self.max_bytes:
                image.setflags(write=False)
                mask.setflags(write=False)
                self.pairs[index] = (image, mask)
                self.bytes += size
        return image, mask

    @classmethod
    def of_mib(cls, mib: float) -> DecodedCache:
        return cls(int(mib * 2**20))

    def clear(self) -> None:
        """Drop every cached pair (later reads decode again)."""
        with self.lock:
            self.pairs.clear()
            self.bytes = 0


def build_augment(cfg: DictConfig | None, seed: int) -> A.BaseCompose | None:
    """Instantiate an albumentations pipeline from config, seeded, in strict mode.

    albumentations 2.x only warns about unknown or outdated 1.x arguments (``always_apply``,
    ``alpha_affine``, ...) and then ignores them; a strict ``Compose`` refuses them, for every
    transform it holds however deeply nested, so here they are configuration errors.
    """
    if cfg is None or (isinstance(cfg, DictConfig) and len(cfg) == 0):
        return None
    augment = instantiate(cfg, _convert_="all")
    try:
        if isinstance(augment, A.Compose):
            augment.strict = True
        else:
            augment = A.Compose([augment], strict=True)
    except ValueError as err:
        raise ConfigError(f"data.augment: {err} (albumentations {A.__version__})") from None
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
    cache: DecodedCache | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: int | None = None,
) -> tf.data.Dataset:
    """A batched dataset of (float32 image 0-255, one-hot mask) for ``model.fit``.

    For ``num_classes == 1`` (sigmoid head) the target is the 0/1 lesion map with one channel.
    Elements travel as uint8 (a quarter of the float32 bytes) and are cast and one-hot
    encoded once per batch. ``num_parallel_calls`` and ``prefetch`` (in batches) are fixed,
    not autotuned: the autotuner stalled at epoch boundaries on small CPUs
    (docs/performance.md).
    ``cache``: where decoded, resized pairs are kept between epochs (None: decode every time).
    ``max_pixels``: larger files are refused as possible decompression bombs.
    ``threshold``: grey masks are binarised (``mask.threshold``, see
    :func:`~flexunet.data.masks.apply_threshold`).
    A pair listed several times (a mixture's sampling weight) is decoded and cached once.
    """
    import tensorflow as tf

    pairs = list(pairs)
    width, height = size
    load = pair_loader(pairs, size, rgb_map, tolerance, augment, cache, max_pixels, threshold)

    def load_tensors(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, mask = tf.numpy_function(load, [index], [tf.uint8, tf.uint8], stateful=True)
        return tf.ensure_shape(image, (height, width, 3)), tf.ensure_shape(mask, (height, width))

    def to_model(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if num_classes == 1:
            target = tf.cast(masks[..., None] > 0, tf.float32)
        else:
            target = tf.one_hot(tf.cast(masks, tf.int32), num_classes, dtype=tf.float32)
        return tf.cast(images, tf.float32), target

    ds = tf.data.Dataset.range(len(pairs))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(load_tensors, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False).map(to_model).prefetch(prefetch)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.map_parallelization = False
    return ds.with_options(options)


def pair_loader(
    pairs: Sequence[Pair],
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    tolerance: int = 0,
    augment: A.BaseCompose | None = None,
    cache: DecodedCache | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: int | None = None,
) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """``load(index)``: the (image, class mask) uint8 arrays of ``pairs[index]`` as a loader
    hands them on: decoded (or from ``cache``), resized and, with ``augment``, augmented.

    A pair listed several times (a mixture's sampling weight) is decoded and cached once;
    ``threshold`` binarises grey masks (:func:`~flexunet.data.masks.apply_threshold`)."""
    cache = cache if cache is not None else DecodedCache(0)
    unique = list(dict.fromkeys(pairs))
    slot = {pair: i for i, pair in enumerate(unique)}
    slots = [slot[pair] for pair in pairs]

    def read(index: int) -> tuple[np.ndarray, np.ndarray]:
        return read_pair(unique[index], size, rgb_map, tolerance, max_pixels, threshold)

    def load(index: int) -> tuple[np.ndarray, np.ndarray]:
        image, mask = cache.get(slots[int(index)], read)
        if augment is not None:
            out = augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    return load


def to_model_arrays(
    images: np.ndarray, masks: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """A batch as the model takes it: float32 images 0-255 and the one-hot float32 target
    (the 0/1 lesion map with one channel when ``num_classes == 1``)."""
    if num_classes == 1:
        target = (masks[..., None] > 0).astype(np.float32)
    else:
        target = np.eye(num_classes, dtype=np.float32)[masks]
    return images.astype(np.float32), target


class PairBatches(keras.utils.PyDataset):
    """The backend-neutral loader: batches of (float32 image 0-255, one-hot mask) from
    ``pairs``, read by ``workers`` threads, ``prefetch`` batches ahead; the same reading,
    caching and augmentation as :func:`make_dataset`.

    Keras reads the batches in order from its own loop; the read-ahead is this class's own
    thread pool, which lives as long as the dataset and reads across epoch ends. (Keras'
    PyDataset workers would stop and drain their queue at every epoch end, which costs 0.1 s
    per epoch: docs/performance.md.)

    ``batch_size`` is the global batch. With ``num_shards`` processes each one serves its
    ``shard``-th slice of every global batch (all processes draw the same seeded order), so
    together they train on exactly the batches one process would. ``repeat``: an endless
    sequence of epochs (for ``steps_per_epoch``); each epoch is shuffled anew from ``seed``
    when ``shuffle``. ``drop_remainder``: skip a last batch smaller than ``batch_size``.
    """

    def __init__(
        self,
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
        workers: int = 2,
        prefetch: int = 2,
        cache: DecodedCache | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        threshold: int | None = None,
        num_shards: int = 1,
        shard: int = 0,
        drop_remainder: bool = False,
    ) -> None:
        super().__init__()  # one reader for Keras: the read-ahead below is ours
        if batch_size % num_shards:
            raise ConfigError(f"train.batch_size={batch_size} must be a multiple of the "
                              f"{num_shards} processes (it is the global batch)")
        self.count = len(pairs)
        self.load = pair_loader(
            pairs, size, rgb_map, tolerance, augment, cache, max_pixels, threshold
        )
        self.num_classes, self.batch_size = num_classes, batch_size
        self.shuffle, self.seed, self.repeat = shuffle, seed, repeat
        self.num_shards, self.shard = num_shards, shard
        self.per_epoch = (self.count // batch_size if drop_remainder
                          else math.ceil(self.count / batch_size))
        if self.per_epoch == 0:
            raise ConfigError(f"{self.count} pairs make no batch of train.batch_size={batch_size}")
        self.epoch = 0
        self._orders: dict[int, np.ndarray] = {}
        # not `workers`: that is the PyDataset property Keras reads to start its own threads
        self.threads, self.prefetch = max(1, workers), max(0, prefetch)
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[tuple[int, int], Future] = {}  # (epoch, step) -> its batch
        self._lock = threading.Lock()  # order() is also called from the reading threads

    def order(self, epoch: int) -> np.ndarray:
        """The indices of ``epoch`` in reading order (the same in every process)."""
        with self._lock:
            if epoch not in self._orders:
                if len(self._orders) > 2:  # the reading runs at most one epoch ahead
                    self._orders.pop(min(self._orders))
                rng = np.random.default_rng([self.seed, epoch])
                self._orders[epoch] = (rng.permutation(self.count) if self.shuffle
                                       else np.arange(self.count))
            return self._orders[epoch]

    @property
    def num_batches(self) -> int | None:
        return None if self.repeat else self.per_epoch

    def __len__(self) -> int:
        return self.per_epoch

    def read(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``step`` of ``epoch``: this process's slice of it, decoded and augmented."""
        batch = self.order(epoch)[step * self.batch_size:(step + 1) * self.batch_size]
        local = len(batch) // self.num_shards
        batch = batch[self.shard * local:(self.shard + 1) * local]
        loaded = [self.load(i) for i in batch]
        images = np.stack([image for image, _ in loaded])
        masks = np.stack([mask for _, mask in loaded])
        return to_model_arrays(images, masks, self.num_classes)

    def _submit(self, key: tuple[int, int]) -> None:
        if key not in self._ahead:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="flexunet-data")
            self._ahead[key] = self._pool.submit(self.read, *key)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = divmod(index, self.per_epoch) if self.repeat else (self.epoch, index)
        if self.prefetch == 0:
            return self.read(epoch, step)
        position = epoch * self.per_epoch + step
        for key in [k for k in self._ahead if k < (epoch, step)]:  # skipped: not needed
            self._ahead.pop(key).cancel()
        for ahead in range(self.prefetch + 1):
            self._submit(divmod(position + ahead, self.per_epoch))
        return self._ahead.pop((epoch, step)).result()

    def on_epoch_end(self) -> None:
        self.epoch += 1


def load_arrays(
    pairs: Sequence[Pair],
    size: tuple[int, int],
    rgb_map: Mapping[tuple[int, int, int], int],
    tolerance: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threshold: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A few pairs as stacked arrays (images float32 0-255, masks uint8); for previews."""
    loaded = [read_pair(p, size, rgb_map, tolerance, max_pixels, threshold) for p in pairs]
    images = np.stack([im for im, _ in loaded]).astype(np.float32)
    masks = np.stack([m for _, m in loaded])
    return images, masks
