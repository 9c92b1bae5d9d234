"""What the presets promise before anything runs: the demo is a study (a noise floor over several
clusters, tasks of different sizes, enough test examples, E's exposure), and every preset's GPU
jobs fit or say so."""

from __future__ import annotations

import math

import pytest

from analysis.roles import CONTROL, MULTITASK, UNSEEN
from runner.config import load_config, preset_path
from runner.experiment import prepare
from runner.stages import STAGES


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    # build_data=False: planning needs no download (the demo's sizes are all set in the preset).
    return prepare(load_config(preset_path("demo")), tmp_path_factory.mktemp("demo-plan"), build_data=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return prepare(load_config(preset_path("study")), tmp_path_factory.mktemp("study-plan"), build_data=False)


def test_the_default_compares_a_base_model_on_real_text(demo):
    from runner.models import checkpoint_kind
    from tasks import get_task

    assert checkpoint_kind(demo.config.model) == "base"
    specs = [get_task(ref.name) for ref in demo.plan.tasks]
    seen = [spec for spec in specs if spec.cluster != UNSEEN]
    # Real text from served packages, never generated; at most one task whose examples a rule of ours
    # builds from it (the report names it); none read from BIG-bench's sdist, no longer served.
    assert demo.config.tasks.source == "packaged" and all(spec.packaged is not None for spec in specs)
    assert len({spec.cluster for spec in seen}) >= 4 and len(specs) > len(seen)  # and an unseen task
    assert sum(bool(spec.packaged.derived) for spec in specs) <= 1
    assert all(src.package != "bigbench" for spec in specs for src in spec.packaged_sources)


def test_the_study_covers_ten_seen_clusters_and_five_unseen_tasks(study):
    from tasks import CLUSTERS, get_task

    seen_clusters = {ref.cluster for ref in study.plan.tasks if ref.cluster != UNSEEN}
    # every seen cluster but reading comprehension with commonsense: no served package holds one
    assert seen_clusters == set(CLUSTERS) - {UNSEEN, "reading_comprehension_commonsense"}
    assert all(get_task(ref.name).packaged_sources[0].package != "bigbench" for ref in study.plan.tasks
               if get_task(ref.name).packaged_sources)
    unseen = [ref.name for ref in study.plan.tasks if ref.cluster == UNSEEN]
    assert len(unseen) >= 5
    # real text wherever a package holds the cluster: only word sense stays generated
    synthetic = [ref.name for ref in study.plan.tasks if get_task(ref.name).packaged is None]
    assert synthetic == ["wic"]
    twins = [job for job in study.plan.jobs if job.role == CONTROL and job.seed != study.config.training.seed]
    assert len({job.tasks[0] for job in twins}) >= 4


def test_demo_has_a_noise_floor_over_two_clusters(demo):
    twins = [job for job in demo.plan.jobs if job.role == CONTROL and job.seed != demo.config.training.seed]
    clusters = {ref.name: ref.cluster for ref in demo.plan.tasks}
    assert len({clusters[job.tasks[0]] for job in twins}) >= 2
    assert {job.tasks[0] for job in twins} == set(demo.config.baseline.select)
    assert {job.seed for job in twins} == set(demo.config.baseline.seeds)


def test_demo_tasks_differ_in_size_and_share_E_equally(demo):
    seen = [ref.name for ref in demo.plan.tasks if ref.cluster != UNSEEN]
    sizes = [demo.plan.train_sizes[name] for name in seen]
    assert len(set(sizes)) == len(sizes) >= 4  # the data-size correlation has something to test
    rates = [e.rate for e in demo.plan.exposure]
    assert max(rates) - min(rates) < 1e-12


def test_demo_exposure_and_evaluation_sizes(demo):
    t = demo.config.training
    e = demo.plan.job(MULTITASK)
    assert dict(e.min_examples) == {name: t.control_max_steps * t.control_batch for name in e.tasks}
    assert e.max_steps >= math.ceil(1.25 * e.min_steps)
    assert demo.config.tasks.test_size >= 30 and demo.config.evaluation.generation_size >= 10


def test_every_stage_describes_itself_without_ray(demo):
    for name, stage in STAGES.items():
        assert stage.load().describe(demo), name


@pytest.mark.parametrize("memory", [24, 80])
def test_paper_preset_jobs_fit_or_refuse_in_one_line(tmp_path, memory):
    from runner.training.memory import plan_job_memory

    exp = prepare(load_config(preset_path("paper"), {"resources.gpu_memory_gb": memory}), tmp_path)
    for job in exp.plan.jobs[:3]:
        plan = plan_job_memory(exp.config, job, None)
        assert plan.fits and plan.micro_batch * plan.accumulation * job.workers == job.batch_size
        assert plan.estimated_gib <= memory


@pytest.mark.parametrize("preset", ["demo", "study"])
def test_presets_plateau_is_the_models_not_the_schedules(preset, demo, study):
    """A constant rate after warmup (a decaying one flattens any curve), progress judged by the validation
    set's own noise, two evaluations without it, and the models queued over the lanes."""
    t = {"demo": demo, "study": study}[preset].config.training
    assert (t.lr_schedule, t.min_delta) == ("constant", "auto") and t.patience >= 2
    assert {"demo": demo, "study": study}[preset].config.resources.job_queue


def test_study_controls_and_their_seed_twins_train_alike(study):
    # A twin that stops on an early flat evaluation while its control trains on would put training
    # length into the seed floor: every control, twin or not, has the same step floor and cap.
    t = study.config.training
    controls = [job for job in study.plan.jobs if job.role == CONTROL]
    assert {(job.min_steps, job.max_steps) for job in controls} == {(t.control_min_steps, t.control_max_steps)}
    assert 0 < t.control_min_steps < t.control_max_steps
