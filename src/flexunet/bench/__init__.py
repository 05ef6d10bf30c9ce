"""Measurements behind flexunet-bench: input pipeline, memory, inference and callback cost."""
