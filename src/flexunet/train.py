"""``flexunet-train``: compose the config, train one job, return the monitored value.

    flexunet-train                                   # CPU model on the synthetic default
    flexunet-train model.base_filters=32 train.epochs=5
    flexunet-train -m train.optimizer.learning_rate=1e-3,3e-4
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from flexunet.config import register_configs
from flexunet.runtime import configure_environment

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def run(cfg: DictConfig) -> float:
    from flexunet.training import train

    result = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    return result["best_value"]


def main() -> None:
    configure_environment()
    register_configs()
    run()


if __name__ == "__main__":
    main()
