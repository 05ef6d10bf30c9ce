"""Scoring predictions: numpy reference metrics, the per-image Scorer, tables and reports."""
