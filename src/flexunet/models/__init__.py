"""Model builders, referenced from ``conf/model/*.yaml`` by ``_target_``: one module per
architecture, each a pure function of its config returning a ``keras.Model`` that takes raw
0-255 pixels and ends in a float32 1x1 softmax over ``num_classes`` (docs/models.md)."""

from flexunet.models.attention_unet import build_attention_unet
from flexunet.models.deeplabv3plus import build_deeplabv3plus
from flexunet.models.efficient_unet import build_efficient_unet
from flexunet.models.flexunet import LevelSpec, build_flexunet, level_specs
from flexunet.models.multires_unet import build_multires_unet
from flexunet.models.sharp_unet import build_sharp_unet
from flexunet.models.swin_unet import build_swin_unet
from flexunet.models.transunet import build_transunet
from flexunet.models.u2net import build_u2net
from flexunet.models.unet3plus import build_unet3plus

__all__ = [
    "LevelSpec", "build_attention_unet", "build_deeplabv3plus", "build_efficient_unet",
    "build_flexunet", "build_multires_unet", "build_sharp_unet", "build_swin_unet",
    "build_transunet", "build_u2net", "build_unet3plus", "level_specs",
]
