"""The run directory: its records (run_info.json, metrics.csv), resuming a killed run,
reusing a trained run's config, and sweeps (summary.csv, TensorBoard HParams)."""
