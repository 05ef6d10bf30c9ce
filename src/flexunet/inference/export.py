"""A Keras model as a SavedModel, ONNX or LiteRT artifact, checked against the Keras model.

The artifact takes what the Keras model takes: a float32 (N, height, width, 3) batch of raw
0-255 RGB pixels, resized to the model input by the project's resize rule
(:mod:`flexunet.data.resize`); the model's own Rescaling layer divides by 255. ``model.json``
beside the artifact says so, with the classes and the largest difference from the Keras
model's probabilities measured on real images, so that the artifact can be used without this
framework (docs/deploy.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import keras
import numpy as np

from flexunet.data.resize import resize_image
from flexunet.data.validate import load_image_rgb
from flexunet.errors import ConfigError, ExportError
from flexunet.inference.predictor import model_io

log = logging.getLogger(__name__)

#: A batch of model inputs to the artifact's outputs, both float32 (N, h, w, C).
Runner = Callable[[np.ndarray], np.ndarray]
METADATA_NAME = "model.json"


@dataclass(frozen=True)
class ExportFormat:
    keras_format: str  # the format of keras.Model.export
    filename: str  # the artifact's name in the output folder
    packages: tuple[str, ...]  # pip names of what converting and checking need beyond TF


FORMATS: dict[str, ExportFormat] = {
    "saved_model": ExportFormat("tf_saved_model", "saved_model", ()),
    "onnx": ExportFormat("onnx", "model.onnx", ("tf2onnx", "onnx", "onnxruntime")),
    "litert": ExportFormat("litert", "model.tflite", ("ai-edge-litert",)),
}

PREPROCESSING = {
    "color": "RGB",
    "dtype": "float32",
    "range": "0-255: raw pixel values, not scaled (the model scales them itself)",
    "resize": "to input width x height with OpenCV: cv2.INTER_AREA when the image is wider "
    "than the input (shrinking), else cv2.INTER_LINEAR",
    "output": "per-pixel class probabilities at the input size: resize them back to the "
    "image's size (same rule), then argmax over the last axis",
}


def export_format(name: str) -> ExportFormat:
    """The format ``name``; a ConfigError when unknown or when its packages are missing."""
    if name not in FORMATS:
        raise ConfigError(f"export.format={name!r}: use one of {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    missing = [p for p in fmt.packages if find_spec(p.replace("-", "_")) is None]
    if missing:
        raise ConfigError(
            f"export.format={name} needs {', '.join(missing)} (not installed): "
            "pip install 'flexunet[export]'"
        )
    return fmt


def default_class_names(num_classes: int) -> list[str]:
    """``background, lesion`` for a binary model, else ``background, class_1, ...``."""
    if num_classes <= 2:
        return ["background", "lesion"]
    return ["background", *(f"class_{i}" for i in range(1, num_classes))]


def model_batch(model: keras.Model, images: Sequence[Path]) -> np.ndarray:
    """The images as the model takes them: RGB, resized to its input, float32 0-255."""
    size, _ = model_io(model)
    return np.stack([resize_image(load_image_rgb(p), size) for p in images]).astype(np.float32)


def write_artifact(model: keras.Model, fmt: ExportFormat, output_dir: Path) -> Path:
    """Convert ``model`` into ``output_dir / fmt.filename`` with Keras' exporter."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / fmt.filename
    model.export(str(path), format=fmt.keras_format, verbose=False)
    return path


def load_artifact(path: Path, fmt: ExportFormat) -> Runner:
    """Run an artifact with its own runtime (TensorFlow, ONNX Runtime, LiteRT), not Keras."""
    if fmt.keras_format == "tf_saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # the closure keeps its variables alive
        return lambda batch: loaded.serve(batch).numpy()
    if fmt.keras_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda batch: session.run(None, {name: batch})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))

    def run(batch: np.ndarray) -> np.ndarray:
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    return run


def export_checked(
    model: keras.Model,
    format_name: str,
    output_dir: Path,
    images: Sequence[Path],
    class_names: Sequence[str],
    tolerance: float,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Write the artifact and ``model.json`` into ``output_dir``, run the artifact on
    ``images`` and compare its outputs with the Keras model's.

    ``model.json`` records the max |difference| whatever it is, and ``details`` (e.g. the
    checkpoint); above ``tolerance`` an :class:`ExportError` says so. Returns the JSON's dict.
    """
    fmt = export_format(format_name)
    (width, height), channels = model_io(model)
    if len(class_names) != max(2, channels):
        raise ConfigError(
            f"export.class_names has {len(class_names)} name(s) but the model predicts "
            f"{max(2, channels)} classes"
        )
    batch = model_batch(model, images)
    # Keras' ONNX exporter needs a model that has been called (a loaded one has not)
    expected = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    artifact = write_artifact(model, fmt, output_dir)
    actual = np.asarray(load_artifact(artifact, fmt)(batch), dtype=np.float32)
    if actual.shape != expected.shape:
        raise ExportError(f"{artifact}: output shape {actual.shape}, Keras gives {expected.shape}")
    difference = float(np.max(np.abs(actual - expected)))
    passed = difference <= tolerance
    metadata = {
        "format": format_name,
        "artifact": artifact.name,
        **details,
        "input": {"width": width, "height": height, "channels": 3, "dtype": "float32"},
        "output": {
            "channels": channels,
            "activation": "sigmoid (lesion probability)" if channels == 1 else "softmax",
        },
        "classes": list(class_names),
        "preprocessing": PREPROCESSING,
        "check": {
            "images": [str(p) for p in images],
            "max_abs_diff": difference,
            "tolerance": tolerance,
            "passed": passed,
        },
    }
    metadata_path = output_dir / METADATA_NAME
    metadata_path.write_text(json.dumps(metadata, indent=2) + "\n")
    log.info(
        "%s: max |difference| from Keras %.3g on %d image(s) (tolerance %.3g)",
        artifact, difference, len(images), tolerance,
    )
    if not passed:
        raise ExportError(
            f"{artifact}: max |difference| from the Keras model's probabilities {difference:.3g} "
            f"> tolerance {tolerance:.3g} on {len(images)} image(s) (recorded in {metadata_path})"
        )
    return metadata
