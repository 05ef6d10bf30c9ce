"""Reusing a finished run's saved config (``RUN/.hydra/config.yaml``).

Two uses, one reading of the saved config (:func:`saved_config`) and one parser of the command
line (Hydra's own :class:`OverridesParser`):

* ``flexunet-train resume=RUN`` continues a killed run: :func:`resume_argv` makes the saved
  config the primary config of the job, so it trains exactly what was configured;
* ``flexunet-eval/infer/figure ckpt_path=RUN`` score or predict with the run's ``data`` and
  ``mask`` nodes: :func:`inherit_run_config` takes them into this job's config.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import is_dataclass
from pathlib import Path

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from flexunet.errors import ConfigError

log = logging.getLogger(__name__)

RESUMED_CONFIG_DIR = ".hydra/resumed"  # where a resumed job's Hydra configs go
_MISSING = object()


def saved_config(run_dir: Path) -> Path:
    """``RUN/.hydra/config.yaml``: the unresolved config Hydra saved for the run."""
    return run_dir / ".hydra" / "config.yaml"


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Command-line overrides as Hydra parses them (quoting, ``~``/``+``, groups, sweeps)."""
    return OverridesParser.create().parse_overrides(list(overrides))


def load_run_config(run_dir: Path) -> DictConfig:
    """A training run's saved config, with its ``paths`` pinned to that run.

    Hydra saves the config unresolved; ``${paths.data_dir}`` must resolve against the
    training job's working directory (from ``.hydra/hydra.yaml``), not this job's.
    """
    path = saved_config(run_dir)
    try:
        cfg = OmegaConf.load(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the training run's config ({exc})") from None
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    cwd = None
    if hydra_yaml.is_file():
        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd")
    if "paths" in cfg:
        if cwd:
            cfg.paths.root_dir = cwd
        cfg.paths.run_dir = str(run_dir)
    return cfg


def inherit_run_config(
    cfg: DictConfig, run_dir: Path | None, overrides: Sequence[str], keys: Sequence[str]
) -> DictConfig:
    """``cfg`` with the nodes ``keys`` (e.g. data, mask) taken from a training run's config.

    The command line still wins: choosing a group (``data=folder``) keeps this job's node;
    a dotted override (``data.source.root=DIR``, ``mask.tolerance=40``) or a sub-group
    (``data/augment=flips``) is re-applied on top of the run's node with the value this job
    composed, and a deletion (``~data.limit``) deletes.
    """
    if run_dir is None:
        return cfg
    run_cfg = load_run_config(run_dir)
    out = cfg.copy()
    chosen = [o.key_or_group.replace("/", ".") for o in parse_overrides(overrides)]
    for key in keys:
        if key in chosen or key not in run_cfg:
            continue
        schema = OmegaConf.get_type(cfg, key)
        base = OmegaConf.structured(schema) if is_dataclass(schema) else OmegaConf.create()
        try:
            out[key] = OmegaConf.merge(base, OmegaConf.to_container(run_cfg[key], resolve=True))
        except OmegaConfBaseException as exc:
            raise ConfigError(
                f"{saved_config(run_dir)}: its {key} config does not fit ({exc}); "
                f"choose {key}=... on the command line"
            ) from None
        for name in chosen:
            if not name.startswith(f"{key}."):
                continue
            value = OmegaConf.select(cfg, name, default=_MISSING)
            if value is _MISSING:  # deleted on the command line (~key)
                parent, _, leaf = name.rpartition(".")
                node = OmegaConf.select(out, parent)
                if isinstance(node, DictConfig) and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(out, name, value, merge=False)
        log.info("%s: from the training run %s", key, saved_config(run_dir))
    return out


def inherit_predict_options(
    cfg: DictConfig, run_dir: Path, overrides: Sequence[str], node: str
) -> DictConfig:
    """``cfg`` with the prediction options (tta, postprocess, tiled, ...) that the training
    run recorded in its ``evaluate_after`` set into ``cfg[node]`` (eval, infer, figure),
    except those the command line sets (``NODE.KEY=...``): an experiment's own TTA and
    post-processing apply when its run is scored or predicted later."""
    from dataclasses import fields

    from flexunet.inference.options import PredictOptions

    recorded = OmegaConf.select(load_run_config(run_dir), "evaluate_after", default=None)
    if not isinstance(recorded, DictConfig):
        return cfg
    chosen = {o.key_or_group for o in parse_overrides(overrides)}
    out = cfg.copy()
    taken = []
    for name in (f.name for f in fields(PredictOptions)):
        if name in recorded and f"{node}.{name}" not in chosen:
            out[node][name] = recorded[name]
            taken.append(f"{name}={recorded[name]}")
    if taken:
        log.info("%s: from the training run's evaluate_after: %s", node, ", ".join(taken))
    return out


def resume_argv(argv: list[str]) -> list[str]:
    """Rewrite ``flexunet-train resume=RUN_DIR [overrides]`` to continue RUN_DIR in place.

    The saved config becomes the primary config (so the resumed job trains exactly what was
    configured), the job writes into RUN_DIR itself, and this invocation's Hydra files go to
    ``RUN_DIR/.hydra/resumed`` so the originals are kept. Further overrides (e.g.
    ``train.epochs=150``) apply on top. Other command lines are returned unchanged.
    """
    args = get_args_parser().parse_known_args(argv[1:])[0]  # Hydra's own reading of argv
    requests = [o for o in parse_overrides(args.overrides) if o.key_or_group == "resume"]
    value = requests[-1].value() if requests else None
    if value in (None, "", "null"):
        return argv
    if args.multirun:
        raise ConfigError("resume=RUN_DIR continues one run; it cannot be combined with -m")
    run_dir = Path(str(value)).expanduser().resolve()
    saved = saved_config(run_dir)
    if not saved.is_file():
        raise ConfigError(
            f"resume={value}: {saved} not found; give the directory of a flexunet-train run"
        )
    rest = [a for a in argv[1:] if a not in {o.input_line for o in requests}]
    # The user's arguments go last: an option such as --cfg job may be among them, and
    # Hydra's parser takes no override after an option's value.
    return [
        argv[0], "--config-path", str(saved.parent), "--config-name", "config",
        f"resume='{run_dir}'", f"hydra.run.dir='{run_dir}'",
        f"hydra.output_subdir={RESUMED_CONFIG_DIR}", *rest,
    ]
