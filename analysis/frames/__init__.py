"""Per-task frames: one task's measured similarities, scores and inputs, from aligned activations."""
