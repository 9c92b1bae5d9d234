"""Can this run support a claim? Convergence, exposure and whether the controls moved beyond their
seed-to-seed noise; then the headline numbers."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from analysis.report.html import esc, num, table
from analysis.report.registry import Section, section
from analysis.roles import CKA, MOVEMENT, SEED_BASELINE, TRAINING, UNSEEN

MOVEMENT_BAR = 5.0  # the controls must move at least this many times their seed-to-seed distance
SMALL_MOVES = "; the controls barely moved beyond chance, so gaps between E and the pretrained model say little"


@section(40, needs=[TRAINING, MOVEMENT])
def health_section(frames: Mapping[str, pl.DataFrame]) -> Section:
    parts = ["<h2 id='health'>Can this run support a claim?</h2>"]
    training = frames.get(TRAINING)
    if training is not None and "trained" in training.columns:
        training = training.filter(pl.col("trained"))  # a published checkpoint has no training to check
    if training is not None and not training.is_empty():
        stuck = training.filter(~pl.col("converged").fill_null(False))
        short = training.filter(pl.col("multitask_examples").is_not_null()
                                & (pl.col("multitask_examples") < pl.col("examples_seen")))
        if stuck.height:
            parts.append(f"<p class='warn'><b>{stuck.height} of {training.height} models did not converge</b> (stopped "
                         f"at their step cap, not on a validation plateau): {esc(', '.join(stuck['model'].to_list()))}. "
                         "Comparisons involving them are not MOSSA's: treat their rows as provisional.</p>")
        else:
            parts.append(f"<p>All {training.height} models converged (stopped on a validation-loss plateau).</p>")
        at_cap = training.filter(pl.col("converged").fill_null(False) & (pl.col("steps") >= pl.col("max_steps")))
        if at_cap.height:
            parts.append(f"<p>{at_cap.height} converged model(s) reached their plateau at the evaluation on their step cap "
                         f"({esc(', '.join(at_cap['model'].to_list()))}): the learning rate had decayed by then, so "
                         "a longer schedule might still lower their loss; the others stopped before it.</p>")
        if short.height:
            parts.append(f"<p class='warn'><b>E saw fewer examples than the control</b> on "
                         f"{esc(', '.join(short['tasks'].to_list()))}: exposure is not comparable there.</p>")
        elif training["multitask_examples"].is_not_null().any():
            parts.append("<p>Exposure: E saw every seen task at least as often as that task's control did.</p>")
        learned = training["learned"].to_list() if "learned" in training.columns else [None] * training.height
        parts.append(table(
            [(r["model"], r["role"], r["seed"], r["steps"], r["examples_seen"], num(r["multitask_examples"]),
              num(r["best_val_loss"], 4), "yes" if r["converged"] else "NO", r["stopped"], learned_ or "not checked")
             for r, learned_ in zip(training.iter_rows(named=True), learned)],
            head=["model", "role", "seed", "steps", "examples seen", "E's examples of this task", "best val loss",
                  "converged", "stopped on", "learned its task(s)"]))
    movement = frames.get(MOVEMENT)
    if movement is not None and not movement.is_empty():
        last = movement.sort("layer").row(-1, named=True)
        if last["seed_distance"] is None:
            parts.append("<p class='warn'>No noise floor: no control was retrained with another seed "
                         "(baseline.seeds is empty), so no difference can be called real.</p>")
        else:
            ok = last["ratio"] is not None and last["ratio"] >= MOVEMENT_BAR
            parts.append(
                f"<p{'' if ok else ' class=warn'}>Did the controls move? At the last layer ({last['layer']}), the median "
                f"over tasks of 1 - s(pretrained, C_t) is {last['control_distance']:.4f}; the median seed-to-seed "
                f"1 - s(C_t, C_t') is {last['seed_distance']:.4f}: a ratio of {last['ratio']:.1f} "
                f"({'at least' if ok else 'BELOW'} the {MOVEMENT_BAR:.0f}x this study asks for"
                f"{'' if ok else SMALL_MOVES}).</p>")
    return parts


def headline_numbers(frames: Mapping[str, pl.DataFrame]) -> list[tuple[str, str]]:
    cka = frames[CKA]
    seen = cka.filter(pl.col("cluster") != UNSEEN)
    rows = [("tasks (seen / unseen)", f"{seen['task'].n_unique()} / {cka['task'].n_unique() - seen['task'].n_unique()}")]
    if "n" in cka.columns:
        rows.append(("probe examples per task (min / max)", f"{cka['n'].min()} / {cka['n'].max()}"))
    if "measure" in cka.columns:
        rows.append(("primary measure", str(cka["measure"][0])))
    baseline = frames.get(SEED_BASELINE)
    if baseline is not None and not baseline.is_empty():
        rows.append(("noise floor", f"{baseline['task'].n_unique()} controls retrained with seed(s) "
                                    f"{sorted(baseline['seed_b'].unique().to_list())}"))
    if not seen.is_empty():
        first, last = seen["layer"].min(), seen["layer"].max()
        for model in sorted(seen["experimental"].unique().to_list()):
            at = dict(seen.filter(pl.col("experimental") == model).group_by("layer").agg(pl.col(CKA).mean()).iter_rows())
            rows.append((f"{model}: mean similarity to C_t at layer {first} / {last}", f"{num(at[first])} / {num(at[last])}"))
    return rows


@section(50, needs=[CKA, SEED_BASELINE])
def headline_section(frames: Mapping[str, pl.DataFrame]) -> Section:
    return ["<h2 id='headline'>Headline numbers</h2>", table(headline_numbers(frames))]
