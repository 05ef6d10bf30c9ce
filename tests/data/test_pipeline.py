"""The streaming input pipeline: alignment under augmentation, targets, resizing, seeding."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from flexunet.data.masks import decode_mask, parse_rgb_map
from flexunet.data.pairing import Pair
from flexunet.data.pipeline import (
    DecodedCache,
    PairBatches,
    build_augment,
    make_dataset,
    read_image,
    read_pair,
    resolve_loader,
)
from flexunet.errors import ConfigError, DataError

BINARY = parse_rgb_map({"0,0,0": 0, "255,255,255": 1})


def write_pair(folder: Path, stem: str, image: np.ndarray, mask: np.ndarray,
               image_ext: str = ".png") -> Pair:
    """Save an image (PNG: lossless, or JPEG) and its mask; return the pair."""
    folder.mkdir(parents=True, exist_ok=True)
    image_path, mask_path = folder / f"{stem}{image_ext}", folder / f"{stem}_mask.png"
    Image.fromarray(image).save(image_path, quality=95)
    Image.fromarray(mask).save(mask_path)
    return Pair(stem, image_path, mask_path)


def asymmetric_lesion(height: int = 64, width: int = 96) -> np.ndarray:
    """A 0/255 mask with no mirror symmetry, built from 2x2 blocks (exact at half size)."""
    mask = np.zeros((height, width), np.uint8)
    mask[8:40, 10:30] = 255  # a block in the top-left
    mask[44:52, 20:width - 10] = 255  # a bar along the bottom, off-centre
    return mask


def encoding_image(mask: np.ndarray) -> np.ndarray:
    """An RGB image whose pixels say their mask class: 230 on the lesion, 30 elsewhere."""
    return np.repeat(np.where(mask > 0, 230, 30).astype(np.uint8)[..., None], 3, axis=2)


def batches(ds) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_augmented_batches_stay_aligned(tmp_path: Path) -> None:
    mask = asymmetric_lesion()
    pair = write_pair(tmp_path, "a", encoding_image(mask), mask)
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    ds = make_dataset(
        [pair] * 3, size=(48, 32), rgb_map=BINARY, num_classes=2, batch_size=2, augment=flip
    )
    got = batches(ds)
    assert [x.shape for x, _ in got] == [(2, 32, 48, 3), (1, 32, 48, 3)]
    expected = cv2.resize(mask, (48, 32), interpolation=cv2.INTER_NEAREST)[:, ::-1] > 0
    for images, targets in got:
        assert images.dtype == np.float32 and targets.dtype == np.float32
        lesion_by_pixel = images[..., 0] > 128
        np.testing.assert_array_equal(lesion_by_pixel, targets[..., 1] == 1)
        np.testing.assert_array_equal(targets[..., 1] == 1, np.stack([expected] * len(images)))


def test_alignment_survives_random_geometric_augmentation(tmp_path: Path) -> None:
    mask = asymmetric_lesion(64, 64)
    pair = write_pair(tmp_path, "a", encoding_image(mask), mask)
    cfg = OmegaConf.load(Path(__file__).parents[2] / "conf" / "data" / "augment" / "flips.yaml")
    ds = make_dataset(  # square: RandomRotate90 swaps the sides of non-square images
        [pair] * 8, size=(32, 32), rgb_map=BINARY, num_classes=2, batch_size=4,
        augment=build_augment(cfg, seed=1),
    )
    for images, targets in batches(ds):
        np.testing.assert_array_equal(images[..., 0] > 128, targets[..., 1] == 1)


def test_one_hot_targets_for_three_classes_and_sigmoid_target(tmp_path: Path) -> None:
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:, 20:] = (255, 0, 0)
    rgb[30:, :] = (0, 255, 0)
    classes = parse_rgb_map({"0,0,0": 0, "255,0,0": 1, "0,255,0": 2})
    pair = write_pair(tmp_path, "c", np.full((40, 40, 3), 99, np.uint8), rgb)
    (_, target), = batches(
        make_dataset([pair], size=(40, 40), rgb_map=classes, num_classes=3, batch_size=1)
    )
    expected = np.zeros((40, 40), np.int64)
    expected[:, 20:] = 1
    expected[30:, :] = 2
    assert target.shape == (1, 40, 40, 3)
    np.testing.assert_array_equal(target.sum(-1), 1.0)
    np.testing.assert_array_equal(target[0].argmax(-1), expected)

    lesion = asymmetric_lesion()
    pair = write_pair(tmp_path, "s", encoding_image(lesion), lesion)
    (_, target), = batches(
        make_dataset([pair], size=(96, 64), rgb_map=BINARY, num_classes=1, batch_size=1)
    )
    assert target.shape == (1, 64, 96, 1)
    np.testing.assert_array_equal(target[0, ..., 0], lesion > 0)


def test_masks_are_resized_nearest_to_valid_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((70, 100)) > 0.5).astype(np.uint8) * 255  # fine salt-and-pepper
    pair = write_pair(tmp_path, "n", encoding_image(mask), mask)
    image, classes = read_pair(pair, (64, 48), BINARY)
    assert image.shape == (48, 64, 3) and classes.shape == (48, 64)
    assert set(np.unique(classes)) <= {0, 1}
    # equal to mapping at the original size, then resizing the class map with NEAREST
    full = decode_mask(pair.mask, BINARY)
    np.testing.assert_array_equal(
        classes, cv2.resize(full, (64, 48), interpolation=cv2.INTER_NEAREST)
    )


def test_jpeg_is_decoded_near_the_model_size(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:300, 0:400]
    image = np.stack([xx * 255 // 400, yy * 255 // 300, (xx + yy) % 256], -1).astype(np.uint8)
    pair = write_pair(tmp_path, "j", image, np.zeros((300, 400), np.uint8), image_ext=".jpg")
    near, full_size = read_image(pair.image, (64, 48))
    assert full_size == (400, 300)
    assert near.shape == (75, 100, 3)  # libjpeg's 1/4 scale: the smallest still >= 64x48
    small, _ = read_pair(pair, (64, 48), BINARY)
    reference = cv2.resize(np.asarray(Image.open(pair.image).convert("RGB")), (64, 48),
                           interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - reference.astype(int)).mean() < 4


def test_image_and_mask_of_different_sizes_is_an_error(tmp_path: Path) -> None:
    pair = write_pair(tmp_path, "d", np.zeros((30, 40, 3), np.uint8), np.zeros((30, 41), np.uint8))
    with pytest.raises(DataError, match="41x30"):
        read_pair(pair, (32, 32), BINARY)


@pytest.mark.filterwarnings("ignore::UserWarning")  # albumentations' own, before the error
@pytest.mark.parametrize(
    ("transform", "argument"),
    [("HorizontalFlip", "always_apply"), ("HorizontalFlip", "p_typo"), ("Affine", "alpha_affine")],
)
def test_misspelled_albumentations_argument_is_a_config_error(
    transform: str, argument: str
) -> None:
    cfg = OmegaConf.create({
        "_target_": "albumentations.Compose",
        "transforms": [
            {"_target_": "albumentations.VerticalFlip"},
            # nested, as a transform added on the command line may be
            {"_target_": "albumentations.OneOf",
             "transforms": [{"_target_": f"albumentations.{transform}", argument: 0.5}]},
        ],
    })
    with pytest.raises(ConfigError) as err:
        build_augment(cfg, seed=0)
    message = str(err.value)
    assert transform in message and argument in message and "\n" not in message
    # a single transform, not wrapped in a Compose, is refused the same way
    with pytest.raises(ConfigError, match=argument):
        build_augment(cfg.transforms[1].transforms[0], seed=0)


def test_shuffling_is_seeded(tmp_path: Path) -> None:
    pairs = []
    for i in range(8):  # image i is filled with the value 10 * i
        pairs.append(write_pair(tmp_path, f"p{i}", np.full((16, 16, 3), 10 * i, np.uint8),
                                np.zeros((16, 16), np.uint8)))

    def order(seed: int) -> list[int]:
        ds = make_dataset(pairs, size=(16, 16), rgb_map=BINARY, num_classes=2, batch_size=3,
                          shuffle=True, seed=seed)
        return [int(v) // 10 for x, _ in batches(ds) for v in x[:, 0, 0, 0]]

    first = order(7)
    assert sorted(first) == list(range(8))
    assert first != list(range(8))
    assert order(7) == first
    assert order(8) != first


def test_cache_decodes_each_pair_once_and_keeps_within_budget(tmp_path: Path) -> None:
    cache = DecodedCache(max_bytes=3 * (16 * 16 * 3 + 16 * 16))  # room for three 16x16 pairs
    reads: list[int] = []

    def read(index: int) -> tuple[np.ndarray, np.ndarray]:
        reads.append(index)
        return np.full((16, 16, 3), index, np.uint8), np.zeros((16, 16), np.uint8)

    for _ in range(3):  # three epochs over five pairs
        for index in range(5):
            image, _ = cache.get(index, read)
            assert image[0, 0, 0] == index
    assert sorted(cache.pairs) == [0, 1, 2]
    assert cache.bytes <= cache.max_bytes
    assert reads == [0, 1, 2, 3, 4, 3, 4, 3, 4]  # pairs 3 and 4 did not fit: read every epoch
    assert not cache.pairs[0][0].flags.writeable  # augmentation cannot alter a cached pair
    cache.clear()
    assert cache.pairs == {} and cache.bytes == 0
    cache.get(0, read)
    assert reads[-1] == 0 and cache.bytes > 0


@pytest.mark.parametrize("augment_name", ["default", "ph2", "flips"])
def test_cached_epochs_match_decoding_each_time(tmp_path: Path, augment_name: str) -> None:
    rng = np.random.default_rng(3)
    pairs = [
        write_pair(tmp_path, f"c{i}", rng.integers(0, 255, (40, 40, 3), np.uint8),
                   np.where(rng.random((40, 40)) > 0.5, 255, 0).astype(np.uint8))
        for i in range(4)
    ]
    augment_cfg = OmegaConf.load(Path(__file__).parents[2] / "conf/data/augment" /
                                 f"{augment_name}.yaml")

    def two_epochs(cache: DecodedCache | None) -> list[tuple[np.ndarray, np.ndarray]]:
        ds = make_dataset(pairs, size=(32, 32), rgb_map=BINARY, num_classes=2, batch_size=2,
                          augment=build_augment(augment_cfg, seed=5), shuffle=True, seed=5,
                          cache=cache, num_parallel_calls=1)  # one thread: same draws
        return batches(ds) + batches(ds)  # the second epoch reads from the cache

    cache = DecodedCache.of_mib(1)
    cached, uncached = two_epochs(cache), two_epochs(None)
    assert len(cache.pairs) == 4  # the second epoch was served from memory
    for (x_c, y_c), (x_u, y_u) in zip(cached, uncached, strict=True):
        np.testing.assert_array_equal(x_c, x_u)
        np.testing.assert_array_equal(y_c, y_u)


def test_exif_rotated_jpeg_is_read_upright_with_its_mask(tmp_path: Path) -> None:
    """Orientation 6 (turned clockwise): training sees the image as a viewer shows it, at the
    mask's size, also through the reduced-size JPEG decode."""
    stored = np.zeros((64, 128, 3), np.uint8)
    stored[:, :64] = (255, 0, 0)  # stored left half red: on top once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    mask = np.zeros((128, 64), np.uint8)
    mask[:64] = 255  # the lesion is the red (upper) half
    Image.fromarray(mask).save(tmp_path / "turned_mask.png")
    image, size = read_image(tmp_path / "turned.jpg", (16, 32))
    assert size == (64, 128) and image.shape[0] > image.shape[1]
    image, classes = read_pair(
        Pair("turned", tmp_path / "turned.jpg", tmp_path / "turned_mask.png"), (16, 32), BINARY
    )
    assert image.shape == (32, 16, 3) and classes.shape == (32, 16)
    red = image[..., 0] > 128
    assert (red == (classes == 1)).mean() > 0.95


def distinct_pairs(folder: Path, count: int) -> list[Pair]:
    """``count`` pairs whose images differ (pixel value = 10 * index) over one mask."""
    mask = asymmetric_lesion(32, 32)
    return [write_pair(folder, f"p{i}", np.full((32, 32, 3), 10 * i, np.uint8), mask)
            for i in range(count)]


def test_py_dataset_batches_equal_tf_data_batches(tmp_path: Path) -> None:
    pairs = distinct_pairs(tmp_path, 5)
    common = dict(size=(32, 32), rgb_map=BINARY, num_classes=2, batch_size=2)
    expected = batches(make_dataset(pairs, **common))
    loader = PairBatches(pairs, **common)
    got = [loader[i] for i in range(len(loader))]
    assert len(got) == len(expected) == 3
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert x.dtype == ex.dtype and y.dtype == ey.dtype
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_process_shards_make_up_the_one_process_batches(tmp_path: Path) -> None:
    pairs = distinct_pairs(tmp_path, 7)
    common = dict(size=(32, 32), rgb_map=BINARY, num_classes=1, batch_size=4, shuffle=True,
                  seed=3, repeat=True, drop_remainder=True)
    whole = PairBatches(pairs, **common)
    shards = [PairBatches(pairs, **common, num_shards=2, shard=k) for k in range(2)]
    assert whole.num_batches is None and len(whole) == 1  # 7 pairs: one whole batch per epoch
    seen = []
    for step in range(4):  # four epochs, each shuffled anew from the seed
        x, _ = whole[step]
        parts = [shard[step][0] for shard in shards]
        assert [len(p) for p in parts] == [2, 2]
        np.testing.assert_array_equal(np.concatenate(parts), x)
        seen.append(tuple(x[:, 0, 0, 0] // 10))
    assert len(set(seen)) > 1  # the order changes between epochs
    with pytest.raises(ConfigError, match="multiple of the 3 processes"):
        PairBatches(pairs, **{**common, "batch_size": 4}, num_shards=3)


@pytest.mark.parametrize(("name", "tf", "processes", "expected"), [
    ("auto", True, 1, "tf_data"), ("auto", False, 1, "py_dataset"),
    ("auto", True, 2, "py_dataset"), ("py_dataset", True, 1, "py_dataset"),
    ("tf_data", True, 1, "tf_data"),
])
def test_loader_auto_is_tf_data_when_tensorflow_can_be_imported(
    name: str, tf: bool, processes: int, expected: str
) -> None:
    assert resolve_loader(name, tf, processes) == expected


@pytest.mark.parametrize(("name", "tf", "processes", "message"), [
    ("tf_data", False, 1, "needs TensorFlow"), ("tf_data", True, 2, "several processes"),
    ("torch", True, 1, "data.loader='torch'"),
])
def test_loader_mistakes_are_config_errors(
    name: str, tf: bool, processes: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_loader(name, tf, processes)
