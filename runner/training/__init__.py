"""Training E and the controls: the Ray-free trainer, its Ray Train worker and launch, the batch
schedule, and the memory and time estimates that size a job before it starts."""
