"""Driver-side progress bars for the long stages."""

from __future__ import annotations

import sys

from ray import tune
from tqdm.auto import tqdm


def bar(total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="job", file=sys.stderr, dynamic_ncols=True, leave=True)


class TuneProgress(tune.Callback):
    """One tick per finished training job, with the best validation loss in the postfix."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.bar = total, desc, None

    def setup(self, **info) -> None:
        self.bar = bar(self.total, self.desc)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.bar.update(1)
        result = trial.last_result or {}
        self.bar.set_postfix_str(f"{trial.config['run']['id']} val={result.get('best_val_loss', float('nan')):.3f}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.bar.update(1)
        self.bar.set_postfix_str(f"{trial.config['run']['id']} FAILED")

    def on_experiment_end(self, trials, **info) -> None:
        if self.bar is not None:
            self.bar.close()
