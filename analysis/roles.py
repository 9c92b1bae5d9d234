"""The study's vocabulary: the models compared, the held-out cluster and the frames, named once.

`analysis/` and `runner/` import these names rather than spell them; the reports' prose and the
frames' documented column values still read "pretrained", "multitask" and "control".
"""

from __future__ import annotations

from collections.abc import Sequence

PRETRAINED = "pretrained"  # the base model, adapters off
MULTITASK = "multitask"    # E: LoRA-tuned on the mixture of every seen task
CONTROL = "control"        # C_t: LoRA-tuned on task t alone
EXTERNAL = "published"     # an experimental model loaded, not trained here (model.experimental)
UNSEEN = "unseen"          # the cluster held out of E's training (its tasks still get controls)
EXPERIMENTALS = (PRETRAINED, MULTITASK)  # the default run's experimental models, each compared with C_t

# A control retrained with another seed is the noise floor: how far a measure moves by chance.
_RESEEDED = f"{CONTROL}@"


def experimentals(tuned: Sequence[str] = (MULTITASK,)) -> tuple[str, ...]:
    """A run's experimental models: the pretrained model, then the tuned ones (E when trained, then each
    published checkpoint of model.experimental, by label); each is compared with C_t, layer by layer."""
    return (PRETRAINED, *tuned)


def reseeded(seed: int) -> str:
    """The model label of a control trained with `seed` instead of the run's seed."""
    return f"{_RESEEDED}{seed}"


def is_reseeded(label: str) -> bool:
    return label.startswith(_RESEEDED)


def seed_of(label: str) -> int:
    return int(label.removeprefix(_RESEEDED))


# Frames in <out>/, by file stem.
SIMILARITY = "similarity"        # pairwise measures: (measure, experimental, task, layer)
LAYER_STATS = "layer_stats"      # single measures: (measure, model, task, layer)
CKA = "cka"                      # the primary measure's rows of `similarity`, as the paper reports them
CROSS_LAYER = "cross_layer"
TSNE = "tsne"
TASK_STATS = "task_stats"
SEED_BASELINE = "seed_baseline"  # primary measure between a control and its reseeded twin
MOVEMENT = "movement"            # per layer: controls' distance from pretrained vs the seed floor
GAPS = "gaps"                    # per (measure, layer): E - pretrained across tasks, CI, noise floor
LAYER_MAP = "layer_map"
CORRELATIONS = "correlations"
UNSEEN_FRAME = "unseen"
FINDINGS = "findings"
TRAINING = "training"
EVAL = "eval"                    # per (model, task): held-out score with CI (analysis.frames.scores)
EVAL_GAPS = "eval_gaps"          # per (experimental, task): tuned model - C_t, paired CI, verdict
EVAL_PREDICTIONS = "eval_predictions"  # every scored prediction, for auditing
SCORE_CKA = "score_cka"          # per (experimental, task): score against similarity over the transition layers
LEARNED = "learned"              # per (trained model, task): did it learn the task? (analysis.derived.learned)
HARNESS = "harness"
REPLICATION = "replication"      # a sweep's: per (claim, measure), does the verdict hold across its settings
INPUTS = "inputs"                # one row: the pretrained model and the tasks' provenance (analysis.frames.inputs)

# Columns whose names the frames share.
TUNED_MINUS_CONTROL = "tuned_minus_control"  # eval_gaps: the tuned model's score (E's or a published one's) - C_t's
# Its name until this release, though it also held published models' gaps: eval_gaps carries it as a copy
# and readers accept it, for one release.
OLD_TUNED_MINUS_CONTROL = "multitask_minus_control"
