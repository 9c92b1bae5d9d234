"""write_report on a frame set built by the real analysis code from synthetic representations:
every figure written, one self-contained HTML whose first section says what the run compared
(the pretrained model's kind, the tasks' provenance), then the findings."""

import base64
import re

import numpy as np
import polars as pl
import pytest

from analysis.claims.findings import COMPARES_PRETRAINED
from analysis.derive import DeriveOptions, derive_frames
from analysis.derived.tsne import tsne_frame
from analysis.frames.align import align_and_mask
from analysis.frames.inputs import BASE, INSTRUCTION_TUNED, RANDOM_INIT, UNKNOWN, inputs_frame
from analysis.frames.suite import cross_layer_frame, pairwise_frame, single_frame
from analysis.report import Page, findings_section, inputs_section, write_report
from analysis.roles import CONTROL, MULTITASK, PRETRAINED, reseeded

CLUSTERS = {"sentiment": ["sst2", "imdb"], "translation": ["wmt14", "wmt16", "para"], "nli": ["rte", "anli"],
            "closed_qa": ["arc"], "unseen": ["cosmos", "wic"]}
PAIRWISE = ["linear_cka", "mutual_knn", "rsa"]
SINGLE = ["pca99", "massive_ratio"]
SYNTHETIC = {"para", "arc", "wic"}  # generated text: part of translation, all of closed_qa, one unseen task
MODEL = "SmolLM2-135M-Instruct"
TUNED_NOTE = (f"; the pretrained model ({MODEL}) is already instruction-tuned, so this compares LoRA tuning on top of "
              "instruction tuning, not the paper's base-vs-tuned contrast")
ALL_FIGURES = {
    "fig2_cka_by_layer", "fig3_cka_representative_clusters", "fig4_tsne_selected_layers", "fig5_layer_measures",
    "fig6a_corr_flesch_kincaid", "fig6b_corr_coleman_liau", "fig7_cka_unseen", "fig8_cka_clusters_1",
    "fig9_cka_clusters_2", "fig10_corr_data_size", "fig11_tsne_pretrained", "fig12_tsne_multitask",
    "layer_map", "layer_map_by_measure", "standardize_effect", "cross_layer_cka",
}


@pytest.fixture(scope="module")
def frames():
    """A tiny study: 10 tasks, 9 layers; multitask moves towards the control after a ramp at 3..5."""
    rng = np.random.default_rng(0)
    n_layers, n, d = 9, 24, 12
    layer = np.arange(n_layers)[:, None, None]
    ramp = np.clip((layer - 3) / 2, 0, 1)
    sim, stats_rows, cross, single, pooled, tasks, clusters = [], [], [], [], {PRETRAINED: [], MULTITASK: []}, [], []
    index = 0
    for ci, (cluster, names) in enumerate(CLUSTERS.items()):
        for task in names:
            control = rng.standard_normal((n_layers, n, d)) + 3 * ci * (np.arange(d) == ci)
            models = {PRETRAINED: control + (0.2 + 0.2 * layer) * rng.standard_normal((n_layers, n, d)),
                      MULTITASK: control + (0.9 - 0.8 * ramp) * rng.standard_normal((n_layers, n, d)),
                      CONTROL: control}
            if index < 4:  # the noise floor: a few controls retrained with another seed
                models[reseeded(1)] = control + 0.05 * rng.standard_normal((n_layers, n, d))
            index += 1
            ids = [f"{task}-{i}" for i in range(n)]
            _, al, _ = align_and_mask({m: (ids, a) for m, a in models.items()})
            pairs = [(m, CONTROL) for m in models if m != CONTROL]
            pairs += [(m, reseeded(1)) for m in (PRETRAINED, MULTITASK) if reseeded(1) in al]
            sim.append(pairwise_frame(task, cluster, al, pairs, PAIRWISE, bootstrap=5))
            sim.append(pairwise_frame(task, cluster, al, [(PRETRAINED, CONTROL), (MULTITASK, CONTROL)], ["linear_cka"],
                                      standardize=True))
            cross.append(cross_layer_frame(task, cluster, al, [(PRETRAINED, CONTROL), (MULTITASK, CONTROL)],
                                           ["linear_cka"]))
            single.append(single_frame(task, cluster, al, SINGLE))
            stats_rows.append((task, cluster, int(rng.integers(100, 3000)), float(rng.normal(8, 2)),
                               float(rng.normal(10, 2))))
            for m, arrays in pooled.items():
                arrays.append(al[m])
            tasks += [task] * n
            clusters += [cluster] * n
    stats = pl.DataFrame(stats_rows, schema=["task", "cluster", "train_size", "flesch_kincaid", "coleman_liau"],
                         orient="row")
    stats = with_provenance(stats)
    similarity, layer_stats = pl.concat(sim, how="diagonal_relaxed"), pl.concat(single)
    derived = derive_frames(similarity, layer_stats, stats, DeriveOptions(
        primary="linear_cka", measures=PAIRWISE, dimensionality="pca99", draws=300,
        estimator={"kernel": "linear", "debiased": False, "threshold": None},
        pretrained_name=MODEL, pretrained_kind=INSTRUCTION_TUNED))
    derived["inputs"] = inputs_frame(model=MODEL, model_kind=INSTRUCTION_TUNED, model_type="llama",
                                     num_layers=n_layers, hidden_size=d, task_stats=stats)
    ts = tsne_frame({m: np.concatenate(v, axis=1) for m, v in pooled.items()}, tasks, clusters,
                    layers=[0, 1, 4, 6, 8], perplexity=10, n_iter=120, max_points=120)
    return {**derived, "similarity": similarity, "layer_stats": layer_stats, "cross_layer": pl.concat(cross),
            "task_stats": stats, "tsne": ts}


def with_provenance(stats: pl.DataFrame) -> pl.DataFrame:
    """task_stats as tasks/stats.py writes it now: provenance, licence and synthetic per task."""
    synthetic = stats["task"].is_in(list(SYNTHETIC))
    return stats.with_columns(
        pl.when(synthetic).then(pl.lit("generated: offline mini-Flan"))
        .otherwise(pl.lit("bigbench 1.0.0: bigbench/benchmark_tasks/") + pl.col("task") + "/task.json")
        .alias("provenance"),
        pl.when(synthetic).then(pl.lit("Apache-2.0 (this project)")).otherwise(pl.lit("Apache-2.0")).alias("licence"),
        synthetic.alias("synthetic"))


def _embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_report_writes_every_figure(tmp_path, frames):
    report = write_report(tmp_path, frames)
    assert report == tmp_path / "report.html"
    written = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert written == ALL_FIGURES
    html = report.read_text()
    pngs = _embedded_pngs(html)
    assert len(pngs) == len(ALL_FIGURES)
    assert all(p.startswith(b"\x89PNG") and len(p) > 5000 for p in pngs)
    for stem in ALL_FIGURES:
        assert f"id='{stem}'" in html
    assert html.index("id='inputs'") < html.index("id='findings'") < html.index("id='headline'") \
        < html.index("id='figures'")
    assert "What this run compared" in html and "The baseline is already instruction-tuned." in html
    assert "Headline numbers" in html and "tasks (seen / unseen)" in html and "8 / 2" in html
    assert "Does the layer map survive other measures?" in html
    assert "src='figures/" not in html and "http" not in html  # self-contained


def test_every_claim_has_a_verdict_and_finite_intervals_where_it_is_not_inconclusive(frames):
    findings = frames["findings"]
    assert findings.filter(pl.col("measure") == "linear_cka").height >= 8
    assert set(findings["verdict"]) <= {"holds", "contradicted", "inconclusive"}
    decided = findings.filter(pl.col("verdict") != "inconclusive")
    assert decided["ci_low"].is_not_null().all() and decided["ci_high"].is_not_null().all()
    assert (decided["ci_low"] <= decided["ci_high"]).all()


def test_layer_map_found_on_the_synthetic_ramp(frames):
    lm = frames["layer_map"].filter(pl.col("measure") == "linear_cka").sort("layer")
    assert set(lm["structure"]) == {"above noise"}
    functions = lm["function"].to_list()
    assert functions[0] == "shared" and functions[-1] == "refinement"
    trans = lm.filter(pl.col("function") == "transition")["layer"].to_list()
    assert trans and 2 <= min(trans) and max(trans) <= 6  # the ramp is at layers 3..5


def test_report_with_cka_only(tmp_path, frames):
    cka = frames["cka"].select("experimental", "task", "cluster", "layer", "cka")
    report = write_report(tmp_path, {"cka": cka})
    written = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {"fig2_cka_by_layer", "fig7_cka_unseen", "fig8_cka_clusters_1"} <= written
    assert not written & {"fig5_layer_measures", "fig4_tsne_selected_layers", "fig6a_corr_flesch_kincaid"}
    assert "No findings frame" in report.read_text()
    assert len(_embedded_pngs(report.read_text())) == len(written)


def test_report_requires_cka(tmp_path, frames):
    with pytest.raises(KeyError):
        write_report(tmp_path, {"layer_stats": frames["layer_stats"]})
    with pytest.raises(ValueError):
        write_report(tmp_path, {"cka": frames["cka"].drop("layer")})


def test_task_scores_show_intervals_and_flag_small_test_sets():
    from analysis.frames.scores import gap_frame, score_frame
    from analysis.report import eval_section

    rows = []
    for task, n in (("rte", 40), ("copa", 12)):
        for i in range(n):
            for model in (PRETRAINED, MULTITASK, CONTROL):
                right = model != PRETRAINED or i % 2
                rows.append((model, task, f"{task}-{i}", "yes" if right else "no", "yes"))
    predictions = pl.DataFrame(rows, schema=["model", "task", "example_id", "prediction", "target"],
                               orient="row").with_columns(pl.lit("nli").alias("cluster"), pl.lit("accuracy").alias("metric"))
    html = "".join(eval_section({"eval": score_frame(predictions), "eval_gaps": gap_frame(predictions)}))
    assert "rte" in html and "+0.0 [+0.0, +0.0]" in html and "no difference" in html
    assert "fewer than 30 test examples: copa (n=12)" in html and "rte (n=" not in html


def test_health_names_models_off_their_plateau_or_on_their_cap():
    from analysis.report import health_section

    training = pl.DataFrame({
        "model": ["multitask", "control-rte", "control-copa", "control-cola"],
        "role": ["multitask", "control", "control", "control"], "tasks": ["rte,copa,cola", "rte", "copa", "cola"],
        "seed": [0] * 4, "steps": [60, 24, 16, 24], "max_steps": [60, 24, 24, 24],
        "examples_seen": [960, 192, 128, 192], "multitask_examples": [None, 320, 320, 320],
        "best_val_loss": [0.8, 1.5, 0.7, 1.9], "converged": [True, True, True, False],
        "stopped": ["plateau", "plateau", "plateau", "cap"]})
    html = "".join(health_section({"training": training}))
    assert "1 of 4 models did not converge" in html and "control-cola" in html
    assert "2 converged model(s) reached their plateau at the evaluation on their step cap (multitask, control-rte)" in html
    assert "E saw every seen task at least as often" in html


def _warnings(html: str) -> list[str]:
    return re.findall(r"<p class='warn'>(.*?)</p>", html)


def test_an_instruction_tuned_baseline_is_stated_first_and_in_every_claim_against_it(frames):
    html = "".join(inputs_section(frames) + findings_section(Page(frames, "linear_cka")))
    first = html.index("What this run compared")
    assert first < html.index("id='findings'")
    assert f"Pretrained model: <b>{MODEL}</b>, an <b>instruction-tuned</b> checkpoint." in html
    assert "Family <code>llama</code>; 9 hidden states per example (the embeddings and 8 blocks); hidden size 12." \
        in html
    [tuned] = [w for w in _warnings(html) if "instruction-tuned" in w]
    assert "not the paper's base-vs-tuned contrast" in tuned and "on top of" in tuned
    # Every claim whose statistic involves the pretrained model, and only those, carries the note.
    findings = frames["findings"]
    against = findings.filter(pl.col("statistic").str.contains("pretrained"))
    assert set(against["claim"]) == COMPARES_PRETRAINED
    assert against["reason"].str.ends_with(TUNED_NOTE).all()
    assert not findings.filter(~pl.col("claim").is_in(list(COMPARES_PRETRAINED)))["reason"].str.contains(
        "instruction").any()
    assert html.count("already instruction-tuned, so this compares LoRA tuning") == len(COMPARES_PRETRAINED)


def test_synthetic_tasks_are_counted_named_and_flagged(frames):
    row = frames["inputs"].row(0, named=True)
    assert (row["tasks"], row["seen_tasks"], row["unseen_tasks"]) == (10, 8, 2)
    assert (row["synthetic_tasks"], row["synthetic_seen_tasks"], row["synthetic_unseen_tasks"]) == (3, 2, 1)
    assert (row["real_tasks"], row["unknown_provenance_tasks"]) == (7, 0)
    assert set(row["synthetic_task_names"]) == SYNTHETIC
    html = "".join(inputs_section(frames))
    assert "10 tasks (8 seen, 2 unseen): 7 (6 seen, 1 unseen) from real text, 3 (2 seen, 1 unseen) synthetic" in html
    [synthetic] = [w for w in _warnings(html) if "synthetic" in w]
    for name in ("para (translation)", "arc (closed_qa)", "wic (unseen)"):
        assert name in synthetic
    assert "cannot speak to the paper's question for those clusters" in synthetic
    assert "entirely generated: closed_qa" in synthetic and "partly generated (they also hold real tasks): " \
        "translation, unseen" in synthetic
    assert "bigbench 1.0.0: bigbench/benchmark_tasks/rte/task.json" in html  # the task table
    assert html.count("generated: offline mini-Flan") == len(SYNTHETIC)


def _learned(tasks: list[str]) -> pl.DataFrame:
    """Each task's control learned it (analysis.derived.learned's columns, the validation losses recorded)."""
    from analysis.derived.learned import COLUMNS

    rows = [{"model": f"control-{t}", "label": CONTROL, "role": CONTROL, "task": t, "metric": "accuracy", "n": 30,
             "score": 80.0, "pretrained_score": 50.0, "gain": 30.0, "gain_ci_low": 10.0, "gain_ci_high": 50.0,
             "best_val_loss": 1.0, "pretrained_val_loss": 2.0, "val_gain_se": 0.1, "learned": "yes",
             "reason": "learned"} for t in tasks]
    return pl.DataFrame(rows).select(COLUMNS)


def _inputs(kind: str, model: str = "gemma-3-270m") -> dict[str, pl.DataFrame]:
    stats = with_provenance(pl.DataFrame({"task": ["rte", "sst2"], "cluster": ["nli", "sentiment"],
                                          "train_size": [100, 200]}))
    return {"inputs": inputs_frame(model=model, model_kind=kind, model_type="gemma3_text", num_layers=19,
                                   hidden_size=640, task_stats=stats), "task_stats": stats,
            "learned": _learned(["rte", "sst2"])}


def test_a_base_baseline_is_stated_without_a_warning():
    html = "".join(inputs_section(_inputs(BASE)))
    assert "Pretrained model: <b>gemma-3-270m</b>, a <b>base</b> (pre-trained only) checkpoint, as in the paper" in html
    assert "Family <code>gemma3_text</code>; 19 hidden states per example (the embeddings and 18 blocks)" in html
    assert _warnings(html) == [] and "instruction-tuned" not in html
    assert "2 of 2 controls learned their task (held-out score above the pretrained model&#x27;s, paired 95% CI; " \
           "validation loss below it by more than 2 SE)." in html
    assert "2.0 vs 1.0" not in html and "1.000 vs 2.000 (SE 0.100)" in html
    assert "2 tasks (2 seen, 0 unseen): 2 (2 seen, 0 unseen) from real text, 0 (0 seen, 0 unseen) synthetic" in html


def test_an_unknown_or_random_baseline_is_a_warning():
    unknown = " ".join(_warnings("".join(inputs_section(_inputs(UNKNOWN, "my-org/some-lm")))))
    assert "It is unknown whether my-org/some-lm is a base checkpoint" in unknown
    assert "<code>model.checkpoint: base</code>" in unknown
    random = " ".join(_warnings("".join(inputs_section(_inputs(RANDOM_INIT, "tiny-llama")))))
    assert "Nothing here is science." in random and "tiny-llama" in random


def test_an_older_run_without_inputs_or_provenance_says_so():
    old_stats = pl.DataFrame({"task": ["rte", "cosmos"], "cluster": ["nli", "unseen"], "train_size": [100, 200],
                              "flesch_kincaid": [8.0, 9.0]})
    row = inputs_frame(model="m", model_kind=UNKNOWN, model_type=None, num_layers=None, hidden_size=None,
                       task_stats=old_stats).row(0, named=True)
    assert (row["tasks"], row["seen_tasks"], row["unseen_tasks"], row["unknown_provenance_tasks"]) == (2, 1, 1, 2)
    assert row["synthetic_tasks"] is None and row["real_tasks"] is None and row["synthetic_task_names"] is None
    html = "".join(inputs_section({"task_stats": old_stats}))
    warnings = " ".join(_warnings(html))
    assert "did not record its inputs" in warnings and "whether each task is real text or generated is unknown" \
        in warnings
    assert "<td>unknown</td>" in html  # provenance, licence and synthetic cells
    assert "No task_stats frame" in "".join(inputs_section({}))


def test_a_registered_figure_is_drawn_and_its_frame_loaded(tmp_path, frames, monkeypatch):
    import matplotlib.pyplot as plt

    from analysis.figures import registry
    from analysis.report import frames_read

    monkeypatch.setattr(registry, "FIGURES", list(registry.FIGURES))

    @registry.figure("planted_figure", needs=["planted_frame"])
    def planted(ctx):
        height = ctx.frames["planted_frame"].height
        return f"a planted figure of {height} rows", lambda: plt.figure()

    assert "planted_frame" in frames_read()  # the runner loads what a figure needs, from the registry
    cka = {"cka": frames["cka"]}  # the least a report draws from: the planted figure is all that differs
    write_report(tmp_path / "without", cka)
    assert not (tmp_path / "without" / "figures" / "planted_figure.png").exists()  # frame missing: skipped
    html = write_report(tmp_path / "with", {**cka, "planted_frame": pl.DataFrame({"x": [1, 2]})}).read_text()
    assert (tmp_path / "with" / "figures" / "planted_figure.png").exists() and "a planted figure of 2 rows" in html
    with pytest.raises(ValueError, match="registered twice"):
        registry.figure("planted_figure")(planted)


def test_the_runner_loads_every_frame_the_report_reads():
    from analysis.figures.registry import FIGURES, frames_needed
    from analysis.report import frames_read
    from analysis.report.registry import ordered, sections_needed

    read = set(frames_read())
    assert set(sections_needed()) <= read and set(frames_needed()) <= read
    assert read == set(sections_needed()) | set(frames_needed())  # exactly what the registry names
    for unit in [*FIGURES, *ordered()]:
        assert set(unit.needs) <= read, unit
    assert len({unit.stem for unit in FIGURES}) == len(FIGURES) and frames_needed()
    assert "eval_gaps" in read and "score_cka" in read  # a section's frame, a figure's derived frame


def test_the_sections_are_registered_in_the_reports_order():
    from analysis.report.registry import ordered

    names = [unit.name for unit in ordered()]
    assert names == ["inputs_section", "experimentals_section", "findings_section", "health_section",
                     "headline_section", "map_section", "robustness_section", "eval_section", "figures_section"]
    assert len({unit.order for unit in ordered()}) == len(names)


def test_a_planted_section_is_drawn_in_its_place_and_its_frame_loaded(tmp_path, frames, monkeypatch):
    """A section registered from outside analysis/report/ is drawn, at its order, without editing it."""
    from analysis.report import frames_read, registry

    monkeypatch.setattr(registry, "SECTIONS", list(registry.ordered()))

    @registry.section(35, needs=["planted_frame"])
    def planted_section(page):
        planted = page.get("planted_frame")
        rows = "none" if planted is None else planted.height
        return [f"<h2 id='planted'>A planted section</h2><p>{rows} planted rows; primary {page.primary}</p>"]

    assert "planted_frame" in frames_read()  # the runner loads what a section needs, from the registry
    # The sections' frames, not the figures' (the figures are another test's): the order is what is checked.
    sections = {name: frame for name, frame in frames.items() if name in registry.sections_needed()}
    html = write_report(tmp_path, {**sections, "planted_frame": pl.DataFrame({"x": [1, 2, 3]})},
                        primary="linear_cka").read_text()
    assert "3 planted rows; primary linear_cka" in html
    assert html.index("id='findings'") < html.index("id='planted'") < html.index("id='health'")
    assert "none planted rows" in write_report(tmp_path / "without", sections).read_text()
    with pytest.raises(ValueError, match="already registered at order 35"):
        registry.section(35)(planted_section)

def test_score_cka_is_a_derived_frame_the_report_only_draws(tmp_path, frames):
    """derive_frames builds score_cka from the eval frame (the report computes nothing): each model's score
    against its mean primary similarity over the primary map's transition layers."""
    from analysis.derive import DeriveOptions, score_cka

    tasks = frames["cka"].select("task", "cluster").unique(maintain_order=True)
    scores = pl.concat([tasks.with_columns(pl.lit(model).alias("model"), pl.lit("accuracy").alias("metric"),
                                           pl.lit(score).alias("score"))
                        for model, score in ((PRETRAINED, 40.0), (MULTITASK, 70.0), (CONTROL, 60.0))])
    frame = score_cka(scores, frames["cka"], frames["layer_map"], DeriveOptions("linear_cka", PAIRWISE, None))
    lm = frames["layer_map"].filter((pl.col("measure") == "linear_cka") & (pl.col("experimental") == MULTITASK))
    transition = sorted(lm.filter(pl.col("function") == "transition")["layer"].to_list())
    assert transition and frame["layers"][0].to_list() == transition
    mt = frame.filter((pl.col("experimental") == MULTITASK) & (pl.col("task") == "sst2")).row(0, named=True)
    cka = frames["cka"].filter((pl.col("experimental") == MULTITASK) & (pl.col("task") == "sst2")
                               & pl.col("layer").is_in(transition))["cka"].mean()
    assert mt["cka"] == pytest.approx(cka) and mt["score_minus_control"] == pytest.approx(10.0)
    assert set(frame["experimental"]) == {PRETRAINED, MULTITASK} and frame.height == 2 * tasks.height
    cka = {"cka": frames["cka"]}  # the least a report draws from: the score figure is all that differs
    html = write_report(tmp_path, {**cka, "score_cka": frame}).read_text()
    assert "id='score_vs_cka_transition'" in html and (tmp_path / "figures" / "score_vs_cka_transition.png").exists()
    assert "score_vs_cka_transition" not in write_report(tmp_path / "without", cka).read_text()
