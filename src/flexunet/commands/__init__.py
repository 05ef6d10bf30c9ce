"""What the ``flexunet-*`` entry points share.

The config directory, the process set-up that must happen before TensorFlow is imported, and
the rule that a user's mistake (bad input, a wrong or missing option) ends the command with
one logged line and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf.errors import MissingMandatoryValue

from flexunet.config import register_configs
from flexunet.errors import FlexUNetError
from flexunet.training.runtime import configure_environment

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "conf")
log = logging.getLogger(__name__)


@contextmanager
def exit_on_user_error(example: str | None = None) -> Iterator[None]:
    """Log a :class:`FlexUNetError` or a missing mandatory option and exit with status 1.

    ``example`` is a command line shown when a required option (``???``) was not given.
    """
    try:
        yield
    except FlexUNetError as exc:
        log.error("%s", exc)  # Hydra would bury the message under a traceback
        raise SystemExit(1) from None
    except MissingMandatoryValue as exc:
        hint = f", e.g. `{example}`" if example else ""
        log.error("%s is required%s", exc.full_key, hint)
        raise SystemExit(1) from None


def launch(hydra_main: Callable[[], Any]) -> None:
    """Set up the environment (before TensorFlow is imported), register the config schemas
    and run a ``@hydra.main`` function."""
    configure_environment()
    register_configs()
    hydra_main()
