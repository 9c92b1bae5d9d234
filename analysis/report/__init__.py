"""figures/*.png and one self-contained report.html (PNGs embedded as base64), from the frames.

The report reads frames and draws them; it computes nothing (analysis.derive builds every derived
frame once). Its first section says what the run compared (the pretrained model: a base
checkpoint as in the paper, an instruction-tuned one, unknown, or a random initialisation; which
tasks are real text and which are synthetic; how many controls learned their task, analysis.learned),
so a reader knows which question the run can answer; then the verdict on each of the paper's
claims, with CIs and the noise floor; then the run's health (convergence, exposure, whether the
controls moved), the layer map, whether the map survives other measures, task scores, and the
paper's figures.

A run may compare several tuned experimental models with the controls: E when it trains one, and
published checkpoints loaded, not trained (model.experimental). The sections and figures read the
primary one's rows of gaps, layer_map and findings (the first in those frames: E when trained); the
"Experimental models" section says which models were published checkpoints and tallies each one's
verdicts.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

from analysis.figures.registry import drawn, frames_needed
from analysis.figures.report_figures import SCORE_CKA
from analysis.findings import DIMENSIONS_CLAIM
from analysis.inputs import BASE, INSTRUCTION_TUNED, RANDOM_INIT, task_provenance
from analysis.layer_map import has_structure, layer_ranges
from analysis.learned import INCONCLUSIVE, NO, YES
from analysis.measures import PAPER_MEASURES
from analysis.roles import (
    CKA,
    CONTROL,
    CORRELATIONS,
    EVAL,
    FINDINGS,
    GAPS,
    HARNESS,
    INPUTS,
    LAYER_MAP,
    LAYER_STATS,
    LEARNED,
    MOVEMENT,
    MULTITASK,
    PRETRAINED,
    SEED_BASELINE,
    SIMILARITY,
    TASK_STATS,
    TRAINING,
    UNSEEN,
    UNSEEN_FRAME,
    is_reseeded,
)
from analysis.scores import score_cka_frames

REQUIRED_CKA_COLUMNS = ("experimental", "task", "cluster", "layer", CKA)
MOVEMENT_BAR = 5.0  # the controls must move at least this many times their seed-to-seed distance
SMALL_MOVES = "; the controls barely moved beyond chance, so gaps between E and the pretrained model say little"
VERDICT_STYLE = {"holds": "#d8f0d2", "contradicted": "#f8d4d0", "inconclusive": "#eeeeee"}
LEARNED_STYLE = {YES: VERDICT_STYLE["holds"], NO: VERDICT_STYLE["contradicted"], INCONCLUSIVE: VERDICT_STYLE["inconclusive"]}
SYNTHETIC_STYLE = "#fff3cd"  # a synthetic task's row in the inputs table
MIN_EVAL_EXAMPLES = 30  # below this a task score's 95% CI spans about +-18 points at p = 0.5
Section = list[str]


def _esc(value) -> str:
    return html.escape(str(value))


def _num(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _table(rows, head=None, styles: list[str | None] | None = None) -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in head) if head else ""
    body = []
    for i, r in enumerate(rows):
        style = f" style='background:{styles[i]}'" if styles and styles[i] else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>")
    return f"<table>{'<tr>' + h + '</tr>' if h else ''}{''.join(body)}</table>"


def _primary(frames: Mapping[str, pl.DataFrame], name: str, primary: str) -> pl.DataFrame | None:
    frame = frames.get(name)
    if frame is None or "measure" not in frame.columns:
        return frame
    return frame.filter(pl.col("measure") == primary)


# ---------------------------------------------------------------- sections


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _model_paragraphs(row: Mapping) -> list[str]:
    name, kind = _esc(row["model"]), row["model_kind"]
    shape = []
    if row.get("model_type"):
        shape.append(f"Family <code>{_esc(row['model_type'])}</code>")
    if row.get("num_layers"):
        shape.append(f"{row['num_layers']} hidden states per example (the embeddings and "
                     f"{_plural(row['num_layers'] - 1, 'block')})")
    if row.get("hidden_size"):
        shape.append(f"hidden size {row['hidden_size']}")
    shape = f" {'; '.join(shape)}." if shape else ""
    if kind == BASE:
        return [f"<p>Pretrained model: <b>{name}</b>, a <b>base</b> (pre-trained only) checkpoint, as in the paper: "
                f"E - pretrained measures what multi-task instruction tuning adds to a pre-trained model.{shape}</p>"]
    if kind == INSTRUCTION_TUNED:
        return [f"<p>Pretrained model: <b>{name}</b>, an <b>instruction-tuned</b> checkpoint.{shape}</p>",
                f"<p class='warn'><b>The baseline is already instruction-tuned.</b> The paper contrasts a pre-trained "
                f"(base) model with instruction-tuned ones; here E - pretrained measures what LoRA multi-task tuning "
                f"adds on top of {name}'s instruction tuning, not the paper's base-vs-tuned contrast. Every claim "
                "below that compares E with the pretrained model says so in its 'why'. To ask the paper's question, "
                "set model.name to a base checkpoint.</p>"]
    if kind == RANDOM_INIT:
        return [f"<p>Pretrained model: <b>{name}</b>, a <b>random initialisation</b>.{shape}</p>",
                f"<p class='warn'><b>Nothing here is science.</b> {name} is the tests' randomly initialised model: "
                "this run checks the plumbing, and no number below says anything about a pre-trained language "
                "model.</p>"]
    return [f"<p>Pretrained model: <b>{name}</b>; whether it is a base checkpoint is <b>unknown</b>.{shape}</p>",
            f"<p class='warn'><b>It is unknown whether {name} is a base checkpoint.</b> Neither the config nor the "
            "model's name says so, and a plain name is no proof that it was only pre-trained. If it is a base model, "
            "E - pretrained is the paper's contrast; if it was instruction-tuned, it measures tuning on top of "
            "instruction tuning. Declare which with <code>model.checkpoint: base</code> (or "
            "<code>instruction_tuned</code>).</p>"]


def _task_paragraphs(tasks: pl.DataFrame) -> list[str]:
    seen = int(tasks["seen"].sum())
    counts = f"{_plural(tasks.height, 'task')} ({seen} seen, {tasks.height - seen} unseen)"
    if tasks["synthetic"].is_null().all():
        return [f"<p>{counts}.</p>",
                "<p class='warn'>This run's task_stats does not record where the tasks' text came from (it predates "
                "the provenance columns): whether each task is real text or generated is unknown. Re-run "
                "<code>layerwise analyze</code> to record it.</p>"]

    def split(frame: pl.DataFrame) -> str:
        n_seen = int(frame["seen"].sum())
        return f"{frame.height} ({n_seen} seen, {frame.height - n_seen} unseen)"

    real, synthetic = tasks.filter(~pl.col("synthetic")), tasks.filter(pl.col("synthetic"))
    unknown = tasks.filter(pl.col("synthetic").is_null())
    text = f"{counts}: {split(real)} from real text, {split(synthetic)} synthetic"
    if unknown.height:
        text += f", {split(unknown)} of unknown provenance ({_esc(', '.join(unknown['task'].to_list()))})"
    parts = [f"<p>{text}.</p>"]
    if synthetic.height:
        named = ", ".join(f"{t} ({c})" for t, c in synthetic.select("task", "cluster").iter_rows())
        clusters = synthetic["cluster"].unique(maintain_order=True).to_list()
        mixed = [c for c in clusters if real.filter(pl.col("cluster") == c).height]
        whole = [c for c in clusters if c not in mixed]
        where = "; ".join(part for part in (
            f"entirely generated: {', '.join(whole)}" if whole else "",
            f"partly generated (they also hold real tasks): {', '.join(mixed)}" if mixed else "") if part)
        every = " Every task is synthetic: no finding in this report is about real text." \
            if synthetic.height == tasks.height else ""
        parts.append(f"<p class='warn'><b>{_plural(synthetic.height, 'synthetic task')}</b>, generated by this "
                     f"project's lexicon and templates rather than taken from a real dataset: {_esc(named)}. "
                     f"Per-cluster findings on generated text cannot speak to the paper's question for those "
                     f"clusters ({_esc(where)}).{every}</p>")
    derived = tasks.filter(pl.col("derived").is_not_null() & (pl.col("derived") != ""))
    if derived.height:
        named = "; ".join(f"{t} ({c}): {why}" for t, c, why in derived.select("task", "cluster", "derived").iter_rows())
        parts.append(f"<p class='warn'><b>{_plural(derived.height, 'derived task')}</b>: real text, but the examples "
                     f"are built from it by a rule of this project rather than taken from a dataset, so they stand in "
                     f"for the paper's task only as far as the rule does: {_esc(named)}.</p>")
    return parts


def _score_cell(r: Mapping) -> str:
    if r["score"] is None:
        return "not scored"
    return (f"{r['score']:.3g} vs {r['pretrained_score']:.3g}: {r['gain']:+.3g} "
            f"[{r['gain_ci_low']:+.3g}, {r['gain_ci_high']:+.3g}]")


def _loss_cell(r: Mapping) -> str:
    if r["best_val_loss"] is None:
        return ""
    if r["pretrained_val_loss"] is None:
        return f"{r['best_val_loss']:.3f} vs (not recorded)"
    se = "" if r["val_gain_se"] is None else f" (SE {r['val_gain_se']:.3f})"
    return f"{r['best_val_loss']:.3f} vs {r['pretrained_val_loss']:.3f}{se}"


def learned_paragraphs(frames: Mapping[str, pl.DataFrame]) -> list[str]:
    """How many controls learned their task (analysis.learned), then one row per control (the noise-floor
    twins included) and E's verdict; a warning when the run did not check."""
    learned = frames.get(LEARNED)
    if learned is None or learned.is_empty():
        return ["<p class='warn'><b>Whether the controls learned their task was not checked</b> (no learned frame: "
                "evaluation disabled, or run before it existed). Every claim below rests on controls that may not "
                "have learned their task; run <code>layerwise evaluate</code> to check.</p>"]
    controls = learned.filter(pl.col("role") == CONTROL)
    main = controls.filter(pl.col("label") == CONTROL)
    by = {v: main.filter(pl.col("learned") == v)["task"].to_list() for v in (YES, NO, INCONCLUSIVE)}
    val_known = main["pretrained_val_loss"].is_not_null().all() and main["val_gain_se"].is_not_null().all()
    rule = ("held-out score above the pretrained model's, paired 95% CI; validation loss below it by more than "
            "2 SE" if val_known else "held-out score above the pretrained model's, paired 95% CI; the pretrained "
            "model's validation loss is not recorded, so the score alone decides")
    others = [f"{len(by[NO])} did not ({', '.join(by[NO])})" if by[NO] else "",
              f"{len(by[INCONCLUSIVE])} inconclusive ({', '.join(by[INCONCLUSIVE])})" if by[INCONCLUSIVE] else ""]
    others = ", ".join(o for o in others if o)
    text = f"{len(by[YES])} of {_plural(main.height, 'control')} learned their task ({rule})"
    text += f": {others}." if others else "."
    warn = " class='warn'" if by[NO] or by[INCONCLUSIVE] else ""
    parts = [f"<p{warn}><b>{_esc(text)}</b>" + (" Claims resting on the others say so in their 'why'." if warn else "")
             + "</p>"]
    e = learned.filter(pl.col("role") == MULTITASK)
    if e.height:
        e_by = {v: e.filter(pl.col("learned") == v)["task"].to_list() for v in (YES, NO, INCONCLUSIVE)}
        parts.append(f"<p>E learned {len(e_by[YES])} of its {_plural(e.height, 'seen task')} by the same rule"
                     + (f"; not {_esc(', '.join(e_by[NO]))}" if e_by[NO] else "")
                     + (f"; inconclusive on {_esc(', '.join(e_by[INCONCLUSIVE]))}" if e_by[INCONCLUSIVE] else "")
                     + ".</p>")
    training = frames.get(TRAINING)
    steps = {} if training is None or "steps" not in training.columns else dict(training.select("model", "steps").iter_rows())
    rows = [(r["task"], r["model"], _num(steps.get(r["model"])), r["metric"] or "", _score_cell(r), _loss_cell(r),
             r["learned"], r["reason"]) for r in controls.iter_rows(named=True)]
    parts.append(_table(rows, head=["task", "control", "steps", "metric", "score vs pretrained: gain [95% CI]",
                                    "best val loss vs pretrained's", "learned", "why"],
                        styles=[LEARNED_STYLE.get(r["learned"]) for r in controls.iter_rows(named=True)]))
    return parts


def inputs_section(frames: Mapping[str, pl.DataFrame]) -> Section:
    """What the run compared: the pretrained model's kind, family and depth; the tasks' provenance; whether
    the controls learned their task."""
    parts = ["<h2 id='inputs'>What this run compared</h2>"]
    inputs = frames.get(INPUTS)
    if inputs is None or inputs.is_empty():
        parts.append("<p class='warn'>This run did not record its inputs (it was analysed before the inputs frame "
                     "existed): which pretrained model it compared, and whether that is a base checkpoint as in the "
                     "paper, is not stated here. Re-run <code>layerwise analyze</code>.</p>")
    else:
        parts += _model_paragraphs(inputs.row(0, named=True))
    tasks = task_provenance(frames.get(TASK_STATS))
    if tasks.is_empty():
        parts.append("<p>No task_stats frame: the tasks and their provenance are not known.</p>")
        return parts + learned_paragraphs(frames)
    parts += _task_paragraphs(tasks)
    yes_no = {True: "yes", False: "no", None: "unknown"}
    rows = [(r["task"], r["cluster"], "seen" if r["seen"] else "unseen", r["provenance"] or "unknown",
             r["licence"] or "unknown", "derived" if r["derived"] else yes_no[r["synthetic"]], _num(r["train_size"]))
            for r in tasks.iter_rows(named=True)]
    styles = [SYNTHETIC_STYLE if r["synthetic"] else None for r in tasks.iter_rows(named=True)]
    parts.append(_table(rows, head=["task", "cluster", "seen / unseen", "provenance", "licence", "synthetic",
                                    "train size"], styles=styles))
    return parts + learned_paragraphs(frames)


def findings_section(frames: Mapping[str, pl.DataFrame], primary: str) -> Section:
    findings = frames.get(FINDINGS)
    if findings is None or findings.is_empty():
        return ["<h2 id='findings'>Findings</h2><p>No findings frame: run `layerwise analyze`.</p>"]
    # The primary measure's claims; the dimensionality claim is stated in its own measure.
    main = findings.filter((pl.col("measure") == primary) | (pl.col("claim") == DIMENSIONS_CLAIM))
    agreement = (findings.group_by("claim").agg(
        pl.col("verdict").filter(pl.col("verdict") == "holds").len().alias("holds"),
        pl.col("verdict").filter(pl.col("verdict") == "contradicted").len().alias("contradicted"),
        pl.len().alias("measures")))
    agree = {c: f"holds {h}, contradicted {x} of {n}" for c, h, x, n in agreement.iter_rows()}
    rows, styles = [], []
    for r in main.iter_rows(named=True):
        ci = "" if r["ci_low"] is None else f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        rows.append((r["claim"], r["statement"], r["measure"], _num(r["value"]), ci, _num(r["floor"]), r["n_tasks"],
                     r["verdict"].upper(), r["reason"], agree.get(r["claim"], "")))
        styles.append(VERDICT_STYLE.get(r["verdict"]))
    source = main["layers_from"][0] if main.height else ""
    level = main["ci_level"][0] if main.height and "ci_level" in main.columns else 0.95
    counts = main["verdict"].value_counts()
    tally = ", ".join(f"{n} {v}" for v, n in counts.sort("verdict").iter_rows())
    return [
        "<h2 id='findings'>Findings: the paper's claims, tested on this run</h2>",
        f"<p>{main.height} claims ({tally}). Each statistic is a mean over tasks (and over the layers of a functional "
        f"group) with a bootstrap CI over tasks, simultaneous over the claims ({level:.1%} each, Bonferroni, so the "
        f"family is at 95%). A claim <b>holds</b> only when its CI lies on the paper's side "
        f"of zero and the effect exceeds the seed-to-seed noise floor averaged over the same layers; "
        f"<b>contradicted</b> when it lies on the other side beyond the floor; otherwise <b>inconclusive</b>. "
        f"Layer groups come from {_esc(source)}. The last column counts the verdict across every pairwise measure "
        f"analysed (see 'Does the layer map survive other measures?').</p>",
        _table(rows, head=["claim", "statement", "measure", "value", "CI", "noise floor", "tasks", "verdict",
                           "why", "across measures"], styles=styles),
    ]


def tuned_labels(frames: Mapping[str, pl.DataFrame]) -> list[str]:
    """The tuned experimental models of the run in the frames' order (the primary first); ["multitask"]
    for frames written before the `experimental` column existed."""
    for name in (GAPS, FINDINGS, LAYER_MAP):
        frame = frames.get(name)
        if frame is not None and "experimental" in frame.columns and frame.height:
            return frame["experimental"].unique(maintain_order=True).to_list()
    return [MULTITASK]


def primary_view(frames: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The frames with gaps, layer_map and findings cut to the primary tuned model's rows: every
    section and figure reads one model's gap curve, never a mix of several."""
    primary = tuned_labels(frames)[0]
    view = dict(frames)
    for name in (GAPS, LAYER_MAP, FINDINGS):
        frame = view.get(name)
        if frame is not None and "experimental" in frame.columns:
            view[name] = frame.filter(pl.col("experimental") == primary)
    return view


def _published(training: pl.DataFrame | None) -> dict[str, dict]:
    """label -> training.parquet row of each model loaded, not trained here."""
    if training is None or "trained" not in training.columns:
        return {}
    return {r["label"]: r for r in training.filter(~pl.col("trained")).iter_rows(named=True)}


def experimentals_section(frames: Mapping[str, pl.DataFrame], primary: str) -> Section:
    """Which experimental models the run compared with the controls, which of them are published
    checkpoints (not trained here), and each one's verdicts on the primary measure."""
    labels = tuned_labels(frames)
    published = _published(frames.get(TRAINING))
    if labels == [MULTITASK] and not published:
        return []
    findings = frames.get(FINDINGS)
    rows = []
    for label in labels:
        if label in published:
            r = published[label]
            what = (f"published checkpoint, not trained here: {r['source']}"
                    + (f" (revision {r['revision']})" if r.get("revision") else "") + f", {r['kind']}")
        else:
            training = frames.get(TRAINING)
            kind = None
            if training is not None and "kind" in training.columns:
                mine = training.filter(pl.col("label") == label)["kind"]
                kind = mine[0] if len(mine) else None
            how = "fully fine-tuned" if kind == "full" else "LoRA-tuned"
            what = f"{how} here on the mixture of every seen task (E)"
        tally = ""
        if findings is not None and "experimental" in findings.columns:
            mine = findings.filter((pl.col("experimental") == label)
                                   & ((pl.col("measure") == primary) | (pl.col("claim") == DIMENSIONS_CLAIM)))
            tally = ", ".join(f"{n} {v}" for v, n in mine["verdict"].value_counts().sort("verdict").iter_rows())
        rows.append((label, what, "yes" if label == labels[0] else "", tally))
    return ["<h2 id='experimentals'>Experimental models</h2>",
            f"<p>Each experimental model is compared with the single-task controls layer by layer, and with the "
            f"pretrained model like E (its gap is model - pretrained). {len(published)} of them "
            f"{'is a published checkpoint' if len(published) == 1 else 'are published checkpoints'}, loaded and not "
            f"trained by this run. The sections below read the primary model ({_esc(labels[0])}); frames "
            "gaps, layer_map and findings hold every model's rows (column <code>experimental</code>).</p>",
            _table(rows, head=["model", "what it is", "primary", f"verdicts ({_esc(primary)})"])]


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
                         f"at their step cap, not on a validation plateau): {_esc(', '.join(stuck['model'].to_list()))}. "
                         "Comparisons involving them are not MOSSA's: treat their rows as provisional.</p>")
        else:
            parts.append(f"<p>All {training.height} models converged (stopped on a validation-loss plateau).</p>")
        at_cap = training.filter(pl.col("converged").fill_null(False) & (pl.col("steps") >= pl.col("max_steps")))
        if at_cap.height:
            parts.append(f"<p>{at_cap.height} converged model(s) reached their plateau at the evaluation on their step cap "
                         f"({_esc(', '.join(at_cap['model'].to_list()))}): the learning rate had decayed by then, so "
                         "a longer schedule might still lower their loss; the others stopped before it.</p>")
        if short.height:
            parts.append(f"<p class='warn'><b>E saw fewer examples than the control</b> on "
                         f"{_esc(', '.join(short['tasks'].to_list()))}: exposure is not comparable there.</p>")
        elif training["multitask_examples"].is_not_null().any():
            parts.append("<p>Exposure: E saw every seen task at least as often as that task's control did.</p>")
        learned = training["learned"].to_list() if "learned" in training.columns else [None] * training.height
        parts.append(_table(
            [(r["model"], r["role"], r["seed"], r["steps"], r["examples_seen"], _num(r["multitask_examples"]),
              _num(r["best_val_loss"], 4), "yes" if r["converged"] else "NO", r["stopped"], learned_ or "not checked")
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


def map_section(frames: Mapping[str, pl.DataFrame], primary: str) -> Section:
    lm = _primary(frames, LAYER_MAP, primary)
    if lm is None or lm.is_empty():
        return []
    parts = [f"<h2 id='layer_map'>Layer map ({_esc(primary)})</h2>"]
    if not has_structure(lm):
        parts.append("<p><b>No layer structure above noise.</b> No layer's gap between E and the pretrained model is "
                     "distinguishable from the seed-to-seed noise floor (its CI excludes zero and it exceeds the floor), "
                     "so this run draws no shared / transition / refinement map.</p>")
        return parts
    row = lm.row(0, named=True)
    ci = lambda k: "" if row[f"{k}_ci_low"] is None else f" (95% CI {row[f'{k}_ci_low']}-{row[f'{k}_ci_high']})"
    parts.append(f"<p>Change points of the mean gap (multitask - pretrained) over seen tasks, from a continuous "
                 f"two-knot segmented linear fit; their CIs from refitting on tasks resampled with replacement: "
                 f"k1 = {row['k1']}{ci('k1')}, k2 = {row['k2']}{ci('k2')}. "
                 f"{int(lm['distinguishable'].sum())} of {lm.height} layers have a gap distinguishable from the noise "
                 "floor.</p>")
    slopes = {f: s for f, s in lm.select("function", "segment_slope").unique(maintain_order=True).iter_rows()}
    parts.append(_table([(f, a, b, f"{slopes[f]:+.4f}") for f, a, b in layer_ranges(lm)],
                        head=["function", "first layer", "last layer", "slope of the gap per layer"]))
    return parts


def robustness_section(frames: Mapping[str, pl.DataFrame], primary: str) -> Section:
    lm = frames.get(LAYER_MAP)
    if lm is None or lm["measure"].n_unique() < 2:
        return []
    rows, described = [], []
    for measure in lm["measure"].unique(maintain_order=True).to_list():
        m = lm.filter(pl.col("measure") == measure)
        if has_structure(m):
            r = m.row(0, named=True)
            ranges = "; ".join(f"{f} {a}-{b}" for f, a, b in layer_ranges(m))
            cis = f"k1 {r['k1']} [{r['k1_ci_low']}, {r['k1_ci_high']}], k2 {r['k2']} [{r['k2_ci_low']}, {r['k2_ci_high']}]"
            rows.append((measure, "above noise", ranges, cis, int(m["distinguishable"].sum())))
            described.append((measure, r["k1"], r["k2"]))
        else:
            rows.append((measure, "none above noise", "", "", int(m["distinguishable"].sum())))
    mapped = described
    if not mapped:
        words = "No measure finds layer structure above its noise floor: the run supports no layer map."
    elif len(mapped) == len(rows):
        k1s, k2s = [d[1] for d in mapped], [d[2] for d in mapped]
        spread1, spread2 = max(k1s) - min(k1s), max(k2s) - min(k2s)
        words = (f"Every measure finds structure above noise; the boundaries agree within "
                 f"{spread1} layer{'' if spread1 == 1 else 's'} (k1) and {spread2} layer{'' if spread2 == 1 else 's'} (k2).")
    else:
        words = (f"{len(mapped)} of {len(rows)} measures find structure above noise "
                 f"({', '.join(d[0] for d in mapped)}); the others do not, so the map is measure-dependent.")
    return ["<h2 id='robustness'>Does the layer map survive other measures?</h2>",
            f"<p>The same gap, noise floor and segmentation under every selected pairwise measure. {_esc(words)}</p>",
            _table(rows, head=["measure", "structure", "map", "change points [95% CI]", "layers above noise"])]


def eval_section(frames: Mapping[str, pl.DataFrame]) -> Section:
    scores = frames.get(EVAL)
    if scores is None or scores.is_empty():
        return []
    gaps = frames.get("eval_gaps")
    tuned = MULTITASK
    if gaps is not None and "experimental" in gaps.columns and gaps.height:
        tuned = gaps["experimental"][0]  # the primary tuned model's gaps (the frame holds every one's)
        gaps = gaps.filter(pl.col("experimental") == tuned)
    name = "E" if tuned == MULTITASK else tuned
    gap_of = {} if gaps is None else {r["task"]: r for r in gaps.iter_rows(named=True)}
    # The noise-floor twins' scores feed learned.parquet; the table compares the study's models.
    scores = scores.filter(~pl.col("model").map_elements(is_reseeded, return_dtype=pl.Boolean))
    score_of = {(r["model"], r["task"]): r for r in scores.iter_rows(named=True)}
    models = [m for m in (PRETRAINED, MULTITASK, CONTROL) if (scores["model"] == m).any()]
    models += [m for m in scores["model"].unique(maintain_order=True).to_list() if m not in models]  # published ones
    rows = []
    for task, cluster, metric in scores.select("task", "cluster", "metric").unique(maintain_order=True).iter_rows():
        cells = [cluster, task, metric, max(r["n"] for (_, t), r in score_of.items() if t == task)]
        for m in models:
            r = score_of.get((m, task))
            cells.append("" if r is None else f"{r['score']:.1f} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]")
        g = gap_of.get(task)
        cells += ["", ""] if g is None else [f"{g['multitask_minus_control']:+.1f} [{g['ci_low']:+.1f}, {g['ci_high']:+.1f}]",
                                             g["verdict"]]
        rows.append(cells)
    parts = ["<h2 id='task_scores'>Task scores (Tables 3 and 4 analogue)</h2>",
             "<p>Each task on its own held-out test examples (never the probe set), 0-100, with 95% bootstrap CIs over "
             "the examples: accuracy by ranking the options by log-likelihood, ROUGE-L and BLEU on greedy generations. "
             f"{_esc(name)} - C_t uses a paired bootstrap; it is called a difference only when its CI excludes zero"
             "; eval_gaps.parquet holds it for every experimental model.</p>",
             _table(rows, head=["cluster", "task", "metric", "n", *models, f"{_esc(name)} - C_t [95% CI]", "verdict"])]
    few = [f"{row[1]} (n={row[3]})" for row in rows if row[3] < MIN_EVAL_EXAMPLES]
    if few:
        parts.append(f"<p class='warn'>Scored on fewer than {MIN_EVAL_EXAMPLES} test examples: {_esc(', '.join(few))}. "
                     "Their intervals are wide; no ranking of models on these tasks is claimed.</p>")
    harness = frames.get(HARNESS)
    if harness is not None and not harness.is_empty():
        h = harness.pivot(on="model", index=["benchmark", "num_fewshot", "metric"], values="score")
        have = [m for m in (PRETRAINED, MULTITASK) if m in h.columns]
        parts += ["<h2 id='benchmarks'>Benchmarks (Table 2 analogue, lm-evaluation-harness)</h2>",
                  _table([(r["benchmark"], r["num_fewshot"], r["metric"], *(f"{r[m]:.2f}" for m in have))
                          for r in h.iter_rows(named=True)], head=["benchmark", "shots", "metric", *have])]
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
            rows.append((f"{model}: mean similarity to C_t at layer {first} / {last}", f"{_num(at[first])} / {_num(at[last])}"))
    return rows


# ---------------------------------------------------------------- frames read

# The frames the sections read (the figures declare theirs with @figure), and the frames the report
# derives itself from others (score_cka joins evaluate's scores with analyze's frames, which may
# have run in either order).
SECTION_FRAMES = (CKA, INPUTS, LEARNED, FINDINGS, TRAINING, MOVEMENT, SEED_BASELINE, TASK_STATS, GAPS, LAYER_MAP, SIMILARITY,
                  LAYER_STATS, CORRELATIONS, UNSEEN_FRAME, EVAL, "eval_gaps", HARNESS)
DERIVED = {SCORE_CKA: (EVAL, CKA, LAYER_MAP)}


def frames_read() -> tuple[str, ...]:
    """Every <out>/<name>.parquet the report reads: the sections' frames and every registered figure's."""
    names = [*SECTION_FRAMES]
    for name in frames_needed():
        names += DERIVED.get(name, (name,))
    return tuple(dict.fromkeys(names))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:left;vertical-align:top}p.warn{background:#fff3cd;padding:6px 10px;border-left:4px solid #e0a800}"
         "figure{margin:2em 0}img{max-width:100%}figcaption{font-size:0.9em;color:#444}")


def write_report(out_dir: Path, frames: Mapping[str, pl.DataFrame], primary: str = PAPER_MEASURES["similarity"],
                 labels: Mapping[str, str] | None = None) -> Path:
    """Write out_dir/figures/*.png and out_dir/report.html; returns the report's path.
    `labels`: per-layer measure -> axis label."""
    if CKA not in frames:
        raise KeyError("write_report needs a 'cka' frame")
    missing = [c for c in REQUIRED_CKA_COLUMNS if c not in frames[CKA].columns]
    if missing:
        raise ValueError(f"'cka' frame lacks columns {missing}")
    experimentals = experimentals_section(frames, primary)
    frames = primary_view(frames)
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>layerwise report</title>",
             f"<style>{STYLE}</style></head><body><h1>Layer by layer: where multi-task learning happens</h1>"]
    parts += inputs_section(frames)
    parts += experimentals
    parts += findings_section(frames, primary)
    parts += health_section(frames)
    parts += ["<h2 id='headline'>Headline numbers</h2>", _table(headline_numbers(frames))]
    parts += map_section(frames, primary)
    parts += robustness_section(frames, primary)
    parts += eval_section(frames)
    parts.append("<h2 id='figures'>Figures</h2>")
    if SCORE_CKA not in frames:
        frames = {**frames, **score_cka_frames(frames, primary)}
    for stem, caption, build in drawn(frames, primary, labels or {}):
        png = _png(build())
        (fig_dir / f"{stem}.png").write_bytes(png)
        parts.append(f"<figure id='{stem}'><img alt='{_esc(stem)}' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode('ascii')}'><figcaption><b>{_esc(stem)}</b>: "
                     f"{_esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    report = out_dir / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    return report
