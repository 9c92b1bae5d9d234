"""The report's opening: what the run compared (the pretrained model's kind, family and depth; the
tasks' provenance; whether the controls learned their task) and which experimental models it holds."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from analysis.claims.findings import DIMENSIONS_CLAIM
from analysis.derived.learned import INCONCLUSIVE, NO, YES
from analysis.frames.inputs import BASE, INSTRUCTION_TUNED, RANDOM_INIT, task_provenance
from analysis.report.html import VERDICT_STYLE, esc, num, plural, table
from analysis.report.registry import Page, Section, section, tuned_labels
from analysis.roles import CONTROL, FINDINGS, GAPS, INPUTS, LAYER_MAP, LEARNED, MULTITASK, TASK_STATS, TRAINING

LEARNED_STYLE = {YES: VERDICT_STYLE["holds"], NO: VERDICT_STYLE["contradicted"], INCONCLUSIVE: VERDICT_STYLE["inconclusive"]}
SYNTHETIC_STYLE = "#fff3cd"  # a synthetic task's row in the inputs table


def _model_paragraphs(row: Mapping) -> list[str]:
    name, kind = esc(row["model"]), row["model_kind"]
    shape = []
    if row.get("model_type"):
        shape.append(f"Family <code>{esc(row['model_type'])}</code>")
    if row.get("num_layers"):
        shape.append(f"{row['num_layers']} hidden states per example (the embeddings and "
                     f"{plural(row['num_layers'] - 1, 'block')})")
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
    counts = f"{plural(tasks.height, 'task')} ({seen} seen, {tasks.height - seen} unseen)"
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
        text += f", {split(unknown)} of unknown provenance ({esc(', '.join(unknown['task'].to_list()))})"
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
        parts.append(f"<p class='warn'><b>{plural(synthetic.height, 'synthetic task')}</b>, generated by this "
                     f"project's lexicon and templates rather than taken from a real dataset: {esc(named)}. "
                     f"Per-cluster findings on generated text cannot speak to the paper's question for those "
                     f"clusters ({esc(where)}).{every}</p>")
    derived = tasks.filter(pl.col("derived").is_not_null() & (pl.col("derived") != ""))
    if derived.height:
        named = "; ".join(f"{t} ({c}): {why}" for t, c, why in derived.select("task", "cluster", "derived").iter_rows())
        parts.append(f"<p class='warn'><b>{plural(derived.height, 'derived task')}</b>: real text, but the examples "
                     f"are built from it by a rule of this project rather than taken from a dataset, so they stand in "
                     f"for the paper's task only as far as the rule does: {esc(named)}.</p>")
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
    """How many controls learned their task (analysis.derived.learned), then one row per control (the noise-floor
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
    text = f"{len(by[YES])} of {plural(main.height, 'control')} learned their task ({rule})"
    text += f": {others}." if others else "."
    warn = " class='warn'" if by[NO] or by[INCONCLUSIVE] else ""
    parts = [f"<p{warn}><b>{esc(text)}</b>" + (" Claims resting on the others say so in their 'why'." if warn else "")
             + "</p>"]
    e = learned.filter(pl.col("role") == MULTITASK)
    if e.height:
        e_by = {v: e.filter(pl.col("learned") == v)["task"].to_list() for v in (YES, NO, INCONCLUSIVE)}
        parts.append(f"<p>E learned {len(e_by[YES])} of its {plural(e.height, 'seen task')} by the same rule"
                     + (f"; not {esc(', '.join(e_by[NO]))}" if e_by[NO] else "")
                     + (f"; inconclusive on {esc(', '.join(e_by[INCONCLUSIVE]))}" if e_by[INCONCLUSIVE] else "")
                     + ".</p>")
    training = frames.get(TRAINING)
    steps = {} if training is None or "steps" not in training.columns else dict(training.select("model", "steps").iter_rows())
    rows = [(r["task"], r["model"], num(steps.get(r["model"])), r["metric"] or "", _score_cell(r), _loss_cell(r),
             r["learned"], r["reason"]) for r in controls.iter_rows(named=True)]
    parts.append(table(rows, head=["task", "control", "steps", "metric", "score vs pretrained: gain [95% CI]",
                                    "best val loss vs pretrained's", "learned", "why"],
                        styles=[LEARNED_STYLE.get(r["learned"]) for r in controls.iter_rows(named=True)]))
    return parts



@section(10, needs=[INPUTS, TASK_STATS, LEARNED, TRAINING])
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
             r["licence"] or "unknown", "derived" if r["derived"] else yes_no[r["synthetic"]], num(r["train_size"]))
            for r in tasks.iter_rows(named=True)]
    styles = [SYNTHETIC_STYLE if r["synthetic"] else None for r in tasks.iter_rows(named=True)]
    parts.append(table(rows, head=["task", "cluster", "seen / unseen", "provenance", "licence", "synthetic",
                                    "train size"], styles=styles))
    return parts + learned_paragraphs(frames)


def _published(training: pl.DataFrame | None) -> dict[str, dict]:
    """label -> training.parquet row of each model loaded, not trained here."""
    if training is None or "trained" not in training.columns:
        return {}
    return {r["label"]: r for r in training.filter(~pl.col("trained")).iter_rows(named=True)}


@section(20, needs=[GAPS, FINDINGS, LAYER_MAP, TRAINING])
def experimentals_section(page: Page) -> Section:
    """Which experimental models the run compared with the controls, which of them are published
    checkpoints (not trained here), and each one's verdicts on the primary measure."""
    frames, primary = page.every_model, page.primary
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
            f"trained by this run. The sections below read the primary model ({esc(labels[0])}); frames "
            "gaps, layer_map and findings hold every model's rows (column <code>experimental</code>).</p>",
            table(rows, head=["model", "what it is", "primary", f"verdicts ({esc(primary)})"])]

