"""FlexUNet: a Hydra-composed framework for skin-lesion segmentation with TensorFlow/Keras."""

__version__ = "0.1.0"
