"""TensorBoard event files written with the ``tensorboard`` package alone (no TensorFlow), so
a run on the JAX backend, where TensorFlow may be absent, logs as one on TensorFlow does."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np


class EventWriter:
    """Scalars and images into one event file under ``log_dir``, as ``tf.summary`` writes
    them (scalars as tensors with the scalar plugin's metadata, images as PNG)."""

    def __init__(self, log_dir: str | Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(log_dir))

    def _add(self, summary: object, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.plugins.scalar.summary_v2 import scalar_pb

        self._add(scalar_pb(tag, np.float32(value)), step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An (H, W, 3) uint8 image."""
        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        height, width, channels = image.shape
        encoded = Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=png.getvalue()
        )
        self._add(Summary(value=[Summary.Value(tag=tag, image=encoded)]), step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
