"""The statistics behind every claim, on synthetic frames with a known truth: pure noise must give
`inconclusive` everywhere and no layer map; a planted ramp must be recovered where it was planted."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from analysis.claims.findings import COMPARES_PRETRAINED, EQUIVALENCE, VERDICTS
from analysis.derive import DeriveOptions, derive_frames
from analysis.derived.gaps import gap_frame, noise_floor
from analysis.derived.layer_map import fit_change_points, layer_groups, paper_boundaries
from analysis.frames.inputs import BASE, INSTRUCTION_TUNED, KINDS, RANDOM_INIT, UNKNOWN
from analysis.roles import CONTROL, MULTITASK, PRETRAINED, UNSEEN, reseeded

LAYERS = np.arange(21)
MEASURE = "linear_cka"


def synthetic_similarity(gap: np.ndarray, *, seen: int = 10, unseen: int = 3, noise: float = 0.02,
                         seed_distance: float = 0.03, floor_tasks: int = 4, slope: float = 0.0,
                         rng_seed: int = 0) -> pl.DataFrame:
    """A similarity frame: s(pretrained, C_t) = 0.9 - slope l + noise, s(E, C_t) = that + gap(l) + noise,
    and four tasks whose control is retrained (the floor): s(C', C) ~ 1 - seed_distance, and the
    pretrained/E similarities to C' jittered by `noise` around those to C. As in real runs, most of
    a task's noise persists across layers (a per-task offset), the rest is per layer."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    tasks = [(f"seen{i}", f"cluster{i % 5}") for i in range(seen)] + [(f"new{i}", UNSEEN) for i in range(unseen)]
    base = 0.9 - slope * LAYERS

    def noisy() -> np.ndarray:
        return noise * (rng.standard_normal() + 0.3 * rng.standard_normal(len(LAYERS)))

    for index, (task, cluster) in enumerate(tasks):
        values = {(PRETRAINED, CONTROL): base + noisy(), (MULTITASK, CONTROL): base + gap + noisy()}
        if index < floor_tasks:
            twin = reseeded(1)
            values[(twin, CONTROL)] = 1 - np.abs(seed_distance + 0.005 * rng.standard_normal(len(LAYERS)))
            for model in (PRETRAINED, MULTITASK):
                values[(model, twin)] = values[(model, CONTROL)] + noisy()
        for (experimental, control), curve in values.items():
            rows += [(MEASURE, experimental, control, task, cluster, int(layer), float(v), 64, False)
                     for layer, v in zip(LAYERS, curve)]
    schema = ["measure", "experimental", "control", "task", "cluster", "layer", "value", "n", "standardized"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def task_stats(frame: pl.DataFrame, rng_seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(rng_seed)
    tasks = frame.select("task", "cluster").unique(maintain_order=True)
    return tasks.with_columns(pl.Series("train_size", rng.integers(100, 600, tasks.height)),
                              pl.Series("flesch_kincaid", rng.normal(8, 2, tasks.height)),
                              pl.Series("coleman_liau", rng.normal(10, 2, tasks.height)))


def derive(sim: pl.DataFrame, **options) -> dict[str, pl.DataFrame]:
    return derive_frames(sim, None, task_stats(sim), DeriveOptions(primary=MEASURE, measures=[MEASURE],
                                                                   dimensionality=None, draws=1000, **options))


def test_pure_noise_is_inconclusive_everywhere_with_no_layer_map():
    frames = derive(synthetic_similarity(np.zeros(len(LAYERS))))
    findings = frames["findings"]
    assert findings.height >= 8 and set(findings["verdict"]) <= set(VERDICTS)
    assert set(findings["verdict"]) == {"inconclusive"}, findings.select("claim", "verdict", "reason")
    layer_map = frames["layer_map"]
    assert layer_map["function"].is_null().all()
    assert set(layer_map["structure"]) == {"none above noise"}
    assert not frames["gaps"]["distinguishable"].any()


def test_planted_ramp_is_recovered_and_the_upper_gap_holds():
    # Shared 0-8 (no gap), transition 9-14 (the gap rises to 0.2), refinement 15-20 (it stays).
    planted = np.clip((LAYERS - 8) / 6, 0, 1) * 0.2
    frames = derive(synthetic_similarity(planted, noise=0.01))
    layer_map = frames["layer_map"].sort("layer")
    assert set(layer_map["structure"]) == {"above noise"}
    k1, k2 = layer_map["k1"][0], layer_map["k2"][0]
    assert abs(k1 - 8) <= 1 and abs(k2 - 14) <= 1
    assert layer_map["k1_ci_low"][0] <= k1 <= layer_map["k1_ci_high"][0]
    functions = dict(zip(layer_map["layer"], layer_map["function"]))
    assert all(functions[la] == "shared" for la in range(0, 8))
    assert all(functions[la] == "transition" for la in range(10, 14))
    assert all(functions[la] == "refinement" for la in range(16, 21))
    verdicts = dict(zip(frames["findings"]["claim"], frames["findings"]["verdict"]))
    assert verdicts["multitask_above_pretrained_upper"] == "holds"
    assert verdicts["multitask_below_pretrained_shared"] == "inconclusive"  # no gap was planted there
    # The unseen tasks carry the same ramp: E above pretrained there too, with 3 tasks too few to say so.
    assert verdicts["unseen_multitask_above_upper"] == "inconclusive"
    row = frames["findings"].filter(pl.col("claim") == "multitask_above_pretrained_upper").row(0, named=True)
    assert row["ci_low"] > 0 and row["value"] > row["floor"] > 0


def test_a_reversed_gap_contradicts_the_paper_and_a_planted_decline_holds():
    frames = derive(synthetic_similarity(-0.1 * (LAYERS >= 6), noise=0.01, slope=0.01))
    verdicts = dict(zip(frames["findings"]["claim"], frames["findings"]["verdict"]))
    assert verdicts["multitask_above_pretrained_upper"] == "contradicted"
    assert verdicts["pretrained_declines_with_depth"] == "holds"


def test_without_a_noise_floor_nothing_holds():
    planted = np.clip((LAYERS - 8) / 6, 0, 1) * 0.2
    frames = derive(synthetic_similarity(planted, noise=0.01, floor_tasks=0))
    assert frames["seed_baseline"].is_empty()
    assert "holds" not in frames["findings"]["verdict"].to_list()
    assert frames["layer_map"]["function"].is_null().all()


def test_noise_floor_is_the_larger_of_seed_distance_and_gap_shift():
    sim = synthetic_similarity(np.zeros(len(LAYERS)), seed_distance=0.05, noise=0.001)
    floor = noise_floor(sim, MEASURE)
    assert floor["n_floor_tasks"].to_list() == [4] * len(LAYERS)
    np.testing.assert_allclose(floor["seed_distance"], 0.05, atol=0.01)
    assert (floor["floor"] >= floor["seed_distance"]).all() and (floor["floor"] >= floor["gap_shift"]).all()


def test_gap_interval_is_a_task_bootstrap_that_brackets_the_mean():
    sim = synthetic_similarity(np.full(len(LAYERS), 0.05), noise=0.02)
    tasks = sorted({t for t in sim["task"].to_list() if t.startswith("seen")})
    gaps = gap_frame(sim, MEASURE, tasks, draws=1000, seed=3)
    assert (gaps["ci_low"] <= gaps["delta"]).all() and (gaps["delta"] <= gaps["ci_high"]).all()
    width = (gaps["ci_high"] - gaps["ci_low"]).mean()
    sd = 0.02 * np.sqrt(1 + 0.3**2) * np.sqrt(2)  # one task's gap: two independent noisy curves
    expected = 2 * 1.96 * sd / np.sqrt(len(tasks))  # the CI of a mean of 10 of them
    assert 0.6 * expected < width < 1.4 * expected
    assert gap_frame(sim, MEASURE, tasks[:3])["ci_low"].is_null().all()  # 3 tasks: no interval


def test_change_points_are_fitted_for_many_curves_at_once():
    x = np.arange(12)
    curves = np.stack([np.clip(x - k, 0, 3) for k in (2, 4, 6)]).astype(float)
    k1, k2 = fit_change_points(x, curves)
    assert k1.tolist() == [2, 4, 6] and k2.tolist() == [5, 7, 9]


@pytest.mark.parametrize(("blocks", "expected"), [(32, (9, 15)), (30, (8, 14))])
def test_paper_boundaries_scale_with_depth(blocks, expected):
    assert paper_boundaries(blocks) == expected
    groups, source = layer_groups(None, list(range(blocks + 1)))
    assert max(groups["shared"]) == expected[0] and max(groups["transition"]) == expected[1]
    assert "paper" in source


def test_data_size_reason_states_what_is_measured():
    # Pure noise over 10 tasks: the correlation's CI straddles zero and is too wide for equivalence.
    frames = derive(synthetic_similarity(np.zeros(len(LAYERS))))
    row = frames["findings"].filter(pl.col("claim") == "no_data_size_correlation").row(0, named=True)
    assert row["verdict"] == "inconclusive"
    assert row["ci_low"] < 0 < row["ci_high"] and (row["ci_low"] < -EQUIVALENCE or row["ci_high"] > EQUIVALENCE)
    assert row["reason"] == (f"CI [{row['ci_low']:.3g}, {row['ci_high']:.3g}] includes zero but reaches beyond "
                             f"+-{EQUIVALENCE}, so a correlation of that size is not ruled out")
    assert "too few tasks" not in row["reason"]


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")  # 3 tasks: resamples with a constant covariate
def test_data_size_with_too_few_tasks_says_how_many_it_needs():
    frames = derive(synthetic_similarity(np.zeros(len(LAYERS)), seen=3))
    row = frames["findings"].filter(pl.col("claim") == "no_data_size_correlation").row(0, named=True)
    assert (row["verdict"], row["reason"]) == ("inconclusive", "only 3 tasks (needs >= 5)")


@pytest.fixture(scope="module")
def ramp_by_kind() -> dict[str, pl.DataFrame]:
    """The planted ramp's findings under each kind of pretrained model (same data, same seed)."""
    sim = synthetic_similarity(np.clip((LAYERS - 8) / 6, 0, 1) * 0.2, noise=0.01)
    return {kind: derive(sim, pretrained_name="some-model", pretrained_kind=kind)["findings"] for kind in KINDS}


def test_the_kinds_are_the_runners():
    from runner.models import resolve as models

    assert (BASE, INSTRUCTION_TUNED, UNKNOWN, RANDOM_INIT) == (models.BASE, models.INSTRUCTION_TUNED, models.UNKNOWN,
                                                               models.RANDOM)


def test_an_instruction_tuned_baseline_is_named_in_every_claim_against_it(ramp_by_kind):
    note = ("; the pretrained model (some-model) is already instruction-tuned, so this compares LoRA tuning on top "
            "of instruction tuning, not the paper's base-vs-tuned contrast")
    base, tuned = ramp_by_kind[BASE], ramp_by_kind[INSTRUCTION_TUNED]
    assert tuned["verdict"].to_list() == base["verdict"].to_list()  # the statistics decide, not the note
    assert "holds" in tuned["verdict"].to_list()
    for b, t in zip(base.iter_rows(named=True), tuned.iter_rows(named=True)):
        if t["claim"] in COMPARES_PRETRAINED:
            assert t["reason"] == b["reason"] + note, t["claim"]
        else:
            assert t["reason"] == b["reason"] and "instruction" not in t["reason"], t["claim"]
    against = set(tuned.filter(pl.col("reason").str.contains("already instruction-tuned"))["claim"])
    assert against == set(tuned["claim"]) & COMPARES_PRETRAINED and len(against) == 7  # no dimensions claim here


def test_an_unknown_baseline_says_how_to_declare_it_and_a_base_one_adds_nothing(ramp_by_kind):
    base, unknown = ramp_by_kind[BASE], ramp_by_kind[UNKNOWN]
    assert unknown["verdict"].to_list() == base["verdict"].to_list()
    compared = unknown.filter(pl.col("claim").is_in(list(COMPARES_PRETRAINED)))
    assert compared["reason"].str.ends_with(
        "; it is unknown whether the pretrained model (some-model) is a base checkpoint (set model.checkpoint), so "
        "this may not be the paper's base-vs-tuned contrast").all()
    for text in ("instruction", "unknown whether", "model.checkpoint", "some-model", "random"):
        assert not base["reason"].str.contains(text).any(), text
    assert ramp_by_kind[RANDOM_INIT].filter(pl.col("claim").is_in(list(COMPARES_PRETRAINED)))["reason"].str.contains(
        "is a random initialisation").all()


def test_without_a_kind_the_baseline_is_unknown():
    assert DeriveOptions(primary=MEASURE, measures=[MEASURE], dimensionality=None).pretrained_kind == UNKNOWN


@pytest.mark.parametrize("sign, reason", [(1, "within the noise floor"), (-1, "opposite sign but")])
def test_a_gap_inside_the_noise_floor_is_never_decided(sign, reason):
    # A clean, tiny gap in the upper layers: its CI excludes zero, but the seed floor (0.12) is four
    # times larger, so it is neither "holds" nor "contradicted".
    planted = sign * 0.03 * (LAYERS >= 12)
    frames = derive(synthetic_similarity(planted, noise=0.002, seed_distance=0.12))
    row = frames["findings"].filter(pl.col("claim") == "multitask_above_pretrained_upper").row(0, named=True)
    assert (row["ci_low"] > 0) if sign > 0 else (row["ci_high"] < 0)
    assert abs(row["value"]) < row["floor"]
    assert row["verdict"] == "inconclusive" and reason in row["reason"], row


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_a_strong_ramp_over_four_tasks_is_never_decided():
    # The planted ramp that holds over 10 tasks; over 4 there is no interval worth the name.
    planted = np.clip((LAYERS - 8) / 6, 0, 1) * 0.2
    frames = derive(synthetic_similarity(planted, noise=0.01, seen=4, unseen=0))
    findings = frames["findings"]
    assert set(findings["verdict"]) == {"inconclusive"}, findings.select("claim", "verdict", "reason")
    gap = findings.filter(pl.col("claim") == "multitask_above_pretrained_upper").row(0, named=True)
    assert gap["reason"].startswith("only 4 tasks (needs >= 5)")


def test_a_ci_across_zero_is_inconclusive_however_large_the_effect():
    from analysis.claims.findings import verdict

    assert verdict(0.5, -0.01, 0.9, 0.01, +1, n_tasks=20) == ("inconclusive", "CI includes zero")
    assert verdict(-0.5, -0.9, 0.01, 0.01, +1, n_tasks=20) == ("inconclusive", "CI includes zero")
    assert verdict(0.5, 0.1, 0.9, float("nan"), +1, n_tasks=20)[0] == "inconclusive"  # no floor measured
    assert verdict(0.5, 0.1, 0.9, 0.01, +1, n_tasks=20)[0] == "holds"


def test_the_simultaneous_level_follows_the_claims_that_ran():
    from analysis.claims import findings as f

    sim = synthetic_similarity(np.zeros(len(LAYERS)))
    without_dims = derive(sim)["findings"]  # no dimensionality measure: that claim is not tested
    assert without_dims.height == 9 and "multitask_more_dimensions_upper" not in without_dims["claim"].to_list()
    np.testing.assert_allclose(without_dims["ci_level"].to_numpy(), 1 - 0.05 / 9)

    # A newly registered claim joins the family, and every interval widens with it.
    @f.claim("planted_extra_claim")
    def extra(ctx, inputs):
        return [f._row(ctx, "planted_extra_claim", "A claim.", "", 0.0, -1.0, 1.0, float("nan"), len(inputs.seen),
                       (f.INCONCLUSIVE, "planted"))]

    try:
        with_extra = derive(sim)["findings"]
    finally:
        f.CLAIMS.remove(next(c for c in f.CLAIMS if c.evaluate is extra))
    assert with_extra["claim"].to_list()[-1] == "planted_extra_claim" and with_extra.height == 10
    np.testing.assert_allclose(with_extra["ci_level"].to_numpy(), 1 - 0.05 / 10)
    width = lambda frame: (frame["ci_high"] - frame["ci_low"]).to_numpy()[:4]  # the four gap/depth claims
    assert (width(with_extra) > width(without_dims)).all()
