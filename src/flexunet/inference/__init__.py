"""Prediction: one predictor from a checkpoint to probabilities at the original image size,
one loop over images, and writing masks and overlays."""
