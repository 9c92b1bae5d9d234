"""Derived frames: gaps, layer maps, correlations and verdicts built from the per-task frames."""
