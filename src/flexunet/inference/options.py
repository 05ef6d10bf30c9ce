"""The prediction options: one schema for ``eval.*``, ``infer.*``, ``figure.*`` and the API.

``conf/predict/default.yaml`` holds their defaults; it is composed into the ``eval``,
``infer`` and ``figure`` nodes, and the structured configs of those nodes extend this class,
so a misspelled option is an error in every command. No TensorFlow here: the config schemas
import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from omegaconf import DictConfig

from flexunet.errors import ConfigError

#: The views of each TTA mode as (quarter turns, flipped axes) of an (N, h, w, C) batch:
#: ``flips`` identity, horizontal, vertical and both flips; ``d4`` the eight symmetries of a
#: square (four turns, each also flipped left-right).
TTA_VIEWS: dict[str, tuple[tuple[int, tuple[int, ...]], ...]] = {
    "flips": ((0, ()), (0, (2,)), (0, (1,)), (0, (1, 2))),
    "d4": tuple((turns, axes) for turns in range(4) for axes in ((), (2,))),
}
TTA_MODES = tuple(TTA_VIEWS)
POSTPROCESS_MODES = ("largest_component",)


@dataclass
class PredictOptions:
    """How a checkpoint predicts an image (see
    :func:`flexunet.inference.predictor.predict_probabilities`)."""

    tta: str | None = None  # flips: mean over identity, h, v, hv flips; d4: 8 turns/flips
    postprocess: str | None = None  # largest_component: keep the largest lesion, fill holes
    tiled: bool = False  # overlapping model-sized tiles blended with a smooth window
    tile_scale: float = 1.0  # image scale at which it is tiled (1.0: native resolution)
    tile_overlap: float = 0.5  # fraction of a tile shared with its neighbour
    batch_size: int = 8  # tiles per forward pass

    def __post_init__(self) -> None:
        if self.tta is not None and self.tta not in TTA_MODES:
            raise ConfigError(f"tta={self.tta!r}: use one of {', '.join(TTA_MODES)} or null")
        if self.postprocess is not None and self.postprocess not in POSTPROCESS_MODES:
            raise ConfigError(
                f"postprocess={self.postprocess!r}: use one of {', '.join(POSTPROCESS_MODES)} "
                "or null"
            )
        if not self.tile_scale > 0:
            raise ConfigError(f"tile_scale={self.tile_scale}: must be positive")
        if not 0 <= self.tile_overlap < 1:
            raise ConfigError(f"tile_overlap={self.tile_overlap}: must be within [0, 1)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be at least 1")

    @classmethod
    def from_config(cls, node: DictConfig) -> PredictOptions:
        """The prediction options of an ``eval``, ``infer`` or ``figure`` config node."""
        return cls(**{f.name: node[f.name] for f in fields(PredictOptions)})
