"""Model builders, referenced from ``conf/model/*.yaml`` by ``_target_``."""

from flexunet.models.flexunet import LevelSpec, build_flexunet, level_specs

__all__ = ["LevelSpec", "build_flexunet", "level_specs"]
