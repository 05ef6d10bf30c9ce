"""The console scripts: one module per command, and what they share.

The config directory (:data:`CONFIG_DIR`), the process set-up that must happen before
TensorFlow is imported, the rule that a user's mistake (bad input, a wrong or missing option)
ends the command with one logged line and exit status 1 instead of a traceback, and the
checkpoint set-up of the commands that predict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from flexunet.config import check_config, register_configs
from flexunet.errors import FlexUNetError
from flexunet.training.runtime import configure_environment, select_backend

if TYPE_CHECKING:
    from flexunet.inference.predictor import Predictor



def _config_dir() -> str:
    """The Hydra config tree: the copy a wheel carries as ``flexunet/conf`` (setup.py maps the
    top-level ``conf/`` there), else ``conf/`` at the repository root in a source checkout,
    which is what an editable install reads, live."""
    packaged = files("flexunet") / "conf"
    if packaged.is_dir():
        return str(packaged)
    return str(Path(__file__).resolve().parents[3] / "conf")


CONFIG_DIR = _config_dir()
log = logging.getLogger(__name__)


@contextmanager
def exit_on_user_error(cfg: DictConfig | None, example: str | None = None) -> Iterator[None]:
    """Select the Keras backend (``runtime.backend``) and check ``cfg`` unless None
    (:func:`~flexunet.config.check_config`: unknown keys, also
    those added with ``+``, and out-of-range values), then run the block. A
    :class:`FlexUNetError` (also one a ``_target_`` raises while Hydra instantiates it) or a
    missing mandatory option is logged as one line and the command exits with status 1.

    ``example`` is a command line shown when a required option (``???``) was not given.
    """
    try:
        if cfg is not None:
            if "runtime" in cfg:  # checking _target_s imports Keras: its backend comes first
                select_backend(cfg.runtime.backend)
            check_config(cfg)
        yield
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except InstantiationException as exc:
        if not isinstance(exc.__cause__, FlexUNetError):
            raise
        log.error("%s", exc.__cause__)
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        hint = f", e.g. `{example}`" if example else ""
        log.error("%s is required%s", exc.full_key, hint)
        raise SystemExit(1) from None


def launch(hydra_main: Callable[[], Any]) -> None:
    """Set up the environment (before TensorFlow is imported), register the config schemas
    and run a ``@hydra.main`` function, which calls
    :func:`~flexunet.training.runtime.configure_runtime` (the Keras backend) before anything
    imports Keras."""
    configure_environment()
    register_configs()
    hydra_main()


def load_checkpoint(
    cfg: DictConfig, overrides: Sequence[str], inherit: Sequence[str]
) -> tuple[DictConfig, Path]:
    """The runtime set-up (backend first: nothing may import Keras before it) and
    ``ckpt_path`` (a checkpoint or a training run directory) resolved to its checkpoint file.

    A run directory's config nodes ``inherit`` (e.g. data, mask) replace this job's unless
    the command line (``overrides``) sets them. Returns that config and the checkpoint.
    """
    from flexunet.errors import ConfigError

    if not isinstance(cfg.ckpt_path, str):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: this command takes one checkpoint or run directory "
            "(flexunet-eval, -infer and -figure ensemble a list)"
        )
    cfg, members = load_members(cfg, overrides, inherit)
    return cfg, members[0][0]


def load_members(
    cfg: DictConfig, overrides: Sequence[str], inherit: Sequence[str]
) -> tuple[DictConfig, list[tuple[Path, Path | None]]]:
    """The backend's runtime set-up and ``ckpt_path`` resolved to ``(checkpoint file, run
    directory or None)``: one, or the members of an ensemble (a sweep directory or a list of
    runs and checkpoints).

    The first member that is a run directory lends its config nodes ``inherit`` (e.g. data,
    mask) unless the command line (``overrides``) sets them.
    """
    from flexunet.training.runtime import configure_runtime

    configure_runtime(**cfg.runtime)
    from flexunet.inference.predictor import resolve_members
    from flexunet.runs.reuse import inherit_run_config

    ckpt_path = cfg.ckpt_path
    if not isinstance(ckpt_path, str):  # a list of runs: plain strings
        ckpt_path = [str(item) for item in ckpt_path]
    members = resolve_members(ckpt_path)
    train_run = next((run for _, run in members if run is not None), None)
    return inherit_run_config(cfg, train_run, overrides, inherit), members


def load_predictor(
    cfg: DictConfig, node: str, overrides: Sequence[str], inherit: Sequence[str]
) -> tuple[DictConfig, Predictor]:
    """The set-up of the commands that predict: :func:`load_members` and the prediction
    options of ``cfg[node]`` (eval, infer, figure). Returns the config and the predictor.

    A training run that recorded prediction options (its ``evaluate_after``: tta,
    postprocess, tiled, ...) lends them unless the command line sets ``NODE.KEY``, so that a
    run is scored and predicted the way its experiment chose.
    """
    from flexunet.inference.options import PredictOptions
    from flexunet.inference.predictor import Predictor
    from flexunet.runs.reuse import inherit_predict_options

    cfg, members = load_members(cfg, overrides, inherit)
    runs = [run for _, run in members if run is not None]
    if runs:
        cfg = inherit_predict_options(cfg, runs[0], overrides, node)
    options = PredictOptions.from_config(cfg[node])
    predictor = Predictor.from_checkpoints(
        [ckpt for ckpt, _ in members], options, cfg.mask.num_classes
    )
    log.info("checkpoint %s, %s", predictor.describe(), options)
    return cfg, predictor
