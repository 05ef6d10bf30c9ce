"""Exceptions with messages meant for the researcher at the command line."""


class FlexUNetError(Exception):
    """Base class: the message names the offending file or key and says how to fix it."""


class ConfigError(FlexUNetError, ValueError):
    """A configuration value is invalid (raised before any tensor is built)."""


class DataError(FlexUNetError, ValueError):
    """Input data is missing, unreadable or inconsistent (raised before training starts)."""


class ExportError(FlexUNetError):
    """An exported model does not reproduce the Keras model it was exported from."""
