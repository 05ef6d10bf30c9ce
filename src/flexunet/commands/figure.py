"""``flexunet-figure``: a results figure from a checkpoint.

    flexunet-figure ckpt_path=outputs/train/runs/RUN                    # 4 test images
    flexunet-figure ckpt_path=RUN figure.tta=flips figure.postprocess=largest_component \
        figure.num_images=3 figure.output=docs/figures/ph2_test.png

Rows: images of ``figure.split``; columns: input, ground truth, prediction (with its lesion
Dice), the prediction's contour on the input. With ``figure.compare`` (more runs or
checkpoints, e.g. the jobs of a model sweep) the figure compares models instead: one column
per image, rows input, ground truth and each model's prediction (docs/models.md):

    flexunet-figure ckpt_path=SWEEP/0 'figure.compare=[SWEEP/1,SWEEP/2]'

Exit status 1 with the reason logged when the input or the options are wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch, load_predictor

log = logging.getLogger(__name__)


def figure_pairs(cfg: DictConfig) -> list:
    """The pairs to show: ``figure.stems`` of the split, else its first ``figure.num_images``."""
    from hydra.utils import instantiate

    from flexunet.data.sources import split_pairs
    from flexunet.errors import DataError

    source = instantiate(cfg.data.source, _convert_="all")
    pairs = split_pairs(source, cfg.figure.split, option="figure.split")
    stems = list(cfg.figure.stems)
    if not stems:
        return pairs[: cfg.figure.num_images]
    by_stem = {p.stem: p for p in pairs}
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise DataError(f"figure.stems: {', '.join(missing)} not in the {cfg.figure.split} split")
    return [by_stem[s] for s in stems]


def make_figure(cfg: DictConfig, overrides: Sequence[str] = ()) -> Path:
    """Predict the chosen pairs and save the labelled grid to ``figure.output``.

    ``ckpt_path`` may be a run directory: its ``data`` and ``mask`` config are used unless
    the command line changes them (as in ``flexunet-eval``).
    """
    from flexunet.data.masks import decode_mask, parse_rgb_map
    from flexunet.evaluation.figure import FigureGrid
    from flexunet.inference.predictor import predict_images

    cfg, predictor = load_predictor(cfg, "figure", overrides, ("data", "mask"))
    pairs = figure_pairs(cfg)
    rgb_map = parse_rgb_map(cfg.mask.rgb_map)
    truths = [
        decode_mask(p.mask, rgb_map, cfg.mask.tolerance, cfg.data.max_pixels, cfg.mask.threshold)
        for p in pairs
    ]
    if cfg.figure.compare:
        picture = comparison(cfg, predictor, pairs, truths)
    else:
        grid = FigureGrid(predictor.num_classes, cfg.figure.cell_width)
        predictions = predict_images(
            predictor, [p.image for p in pairs], "figure", max_pixels=cfg.data.max_pixels
        )
        for pair, prediction, true in zip(pairs, predictions, truths, strict=True):
            grid.add(pair.stem, prediction, true)
        picture = grid.image()
    if cfg.figure.colors:
        picture = picture.quantize(colors=cfg.figure.colors)
    output = Path(cfg.figure.output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    picture.save(output, optimize=True)
    log.info("wrote %s (%d image(s) of %s)", output, len(pairs), predictor.describe())
    return output


def comparison(cfg: DictConfig, first, pairs: list, truths: list):
    """The model-comparison figure: ``first`` (the predictor of ``ckpt_path``) and one
    predictor per ``figure.compare`` entry (a run, a checkpoint, or a sweep as its ensemble),
    on the same images and prediction options; each row is titled with the Keras model's name
    (the architecture, e.g. ``swin_unet``)."""
    from flexunet.evaluation.figure import ComparisonGrid
    from flexunet.inference.options import PredictOptions
    from flexunet.inference.predictor import Predictor, predict_images, resolve_members

    options = PredictOptions.from_config(cfg.figure)
    grid = ComparisonGrid(first.num_classes, cfg.figure.cell_width)
    runs = [cfg.ckpt_path, *cfg.figure.compare]
    for i, path in enumerate(runs):
        predictor = first if i == 0 else Predictor.from_checkpoints(
            [ckpt for ckpt, _ in resolve_members(str(path))], options, first.num_classes
        )
        name = predictor.models[0].name
        if len(predictor.models) > 1:
            name = f"{name} (x{len(predictor.models)})"
        predictions = list(predict_images(
            predictor, [p.image for p in pairs], f"figure {name}",
            max_pixels=cfg.data.max_pixels,
        ))
        if i == 0:
            grid.add_images([p.image for p in predictions], truths)
        grid.add_model(name, predictions)
    return grid.image()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="figure")
def run(cfg: DictConfig) -> None:
    with exit_on_user_error(cfg, "flexunet-figure ckpt_path=outputs/train/runs/RUN"):
        make_figure(cfg, list(HydraConfig.get().overrides.task))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
