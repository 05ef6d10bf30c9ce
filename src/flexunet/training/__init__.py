"""Training: fit, losses, Keras metrics, callbacks and the process runtime (threads, GPUs)."""
