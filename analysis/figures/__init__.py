"""Figure builders: each takes tidy frames and returns a matplotlib Figure (Agg backend)."""
