"""Inference over the plan's models: the shared Ray Data actor, the hidden-state encoder, the
scorer of held-out test examples and the optional lm-evaluation-harness pass."""
