"""``flexunet-bench``: what flexunet-train's input pipeline, memory, inference and callbacks
cost, measured in one run; prints a table and writes ``benchmark.json`` to the run directory.

    flexunet-bench                                       # PH2; the CPU model and 256/6/k7
    flexunet-bench bench.rounds=3 bench.models.k7_256.images=8
    flexunet-bench hydra.run.dir=/tmp/bench data/augment=flips

See conf/bench.yaml for the options and docs/performance.md for the results.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.commands import CONFIG_DIR, exit_on_user_error, launch


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="bench")
def run(cfg: DictConfig) -> None:
    with exit_on_user_error(cfg):
        from flexunet.training.runtime import configure_runtime

        configure_runtime(**cfg.runtime)  # the Keras backend: before measure imports Keras
        from flexunet.bench.measure import run_benchmark

        run_benchmark(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    launch(run)


if __name__ == "__main__":
    main()
