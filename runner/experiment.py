"""One experiment: its config, plan and manifest, the Ray connection, and the stages run in order."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.artifacts.store import Manifest
from runner.config import ExperimentConfig
from runner.data import load_all_splits, select_tasks, source_pool_sizes
from runner.models import resolve_model
from runner.models.external import ExternalModel
from runner.plan import Plan, make_plan

log = logging.getLogger("layerwise")
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",  # library progress bars inside workers; the driver draws its own
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::UserWarning,ignore::DeprecationWarning",
    "RAY_TRAIN_V2_ENABLED": "1",
    "RAY_DEDUP_LOGS": "1",
}
# A worker's `ray.train.report` waits until the Train controller has taken its previous report, and
# the controller looks every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (Ray's default: 2 s). A model that
# evaluates (and checkpoints) more often than that idles up to 2 s per evaluation: 4 of a tiny
# control's 4.2 s. A poll is one small actor call per worker. A value the user sets is kept.
TRAIN_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}


@dataclass
class Experiment:
    config: ExperimentConfig
    plan: Plan
    manifest: Manifest
    _model_dir: str | None = None
    _splits: dict | None = None
    _externals: list | None = None
    # What each stage reported for the closing summary ("needs attention" lines included).
    notes: list[str] = field(default_factory=list)

    @property
    def splits(self) -> dict:
        # Loaded on first use: `--dry-run` and `report` never read the data.
        if self._splits is None:
            self._splits = load_all_splits(self.config, list(self.plan.tasks), self.plan.train_sizes)
        return self._splits

    @property
    def externals(self) -> list[ExternalModel]:
        """The published experimental models (runner.models.external.ExternalModel), located from metadata."""
        if self._externals is None:
            from runner.models.external import locate

            self._externals = [locate(entry) for entry in self.config.model.experimental]
        return self._externals

    @property
    def model_dir(self) -> str:
        # Resolved lazily: `report` and `--dry-run` never need the weights.
        if self._model_dir is None:
            self._model_dir = resolve_model(self.config.model)
        return self._model_dir


def prepare(config: ExperimentConfig, out: Path, cell: str = "", build_data: bool = True) -> Experiment:
    """The experiment's plan. `build_data`: build the packaged real text first (once, in the driver,
    before Ray starts) so every task's training-set size is exact; a dry run passes False."""
    refs = select_tasks(config)
    plan = make_plan(config, out, refs, cell=cell, pool_size=source_pool_sizes(config, refs, build=build_data))
    manifest = Manifest(plan.out, config.model_dump(mode="json"), config.digest())
    return Experiment(config=config, plan=plan, manifest=manifest)


def connect(address: str | None = None, log_dir: Path | None = None, verbose: bool = False,
            plugins: tuple[str, ...] = ()) -> None:
    """Attach to a cluster when an address is given (flag or RAY_ADDRESS), else start Ray in-process.

    The user's measure modules (`plugins`, analysis.plugins) travel with the job as py_modules, so the
    analysis workers of a cluster import them as the driver did.

    Workers' output is forwarded to the driver's stderr, which runner.ops.console points at
    <out>/logs/console.log unless `verbose`; the terminal shows the runner's own lines."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Workers see the driver's caches; library chatter (progress bars, deprecation notices) is
    # silenced so that worker logs say what runs where.
    env = {k: os.environ[k] for k in ("LAYERWISE_CACHE", "HF_HOME", "HF_HUB_OFFLINE") if k in os.environ}
    env.update(QUIET_ENV)
    os.environ.update(QUIET_ENV)
    for key, value in TRAIN_ENV.items():
        env[key] = os.environ.setdefault(key, value)
    # Under `ray job submit` the job's runtime env already reaches every worker, and Ray refuses a
    # driver that sets any of the same variables again.
    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
    job_env = (job.get("runtime_env") or {}).get("env_vars") or {}
    env = {k: v for k, v in env.items() if k not in job_env}
    from runner.ops.console import quiet_ray

    quiet_ray(verbose)
    runtime_env: dict = {"env_vars": env}
    if plugins and "py_modules" not in (job.get("runtime_env") or {}):  # a job's own py_modules already ship code
        from analysis.plugins import plugin_paths

        runtime_env["py_modules"] = plugin_paths(plugins)
    # A local Ray starts its dashboard unless LAYERWISE_DASHBOARD=0 (the tests' many short runs skip it).
    dashboard = None if address or os.environ.get("LAYERWISE_DASHBOARD", "1") != "0" else False
    context = ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING,
                       include_dashboard=dashboard)
    resources = ray.cluster_resources()
    log.debug("ray: %s, %s CPUs, %s GPUs, dashboard %s", "attached to " + address if address else "local",
              resources.get("CPU", 0), resources.get("GPU", 0), context.dashboard_url or "off")
    if log_dir is not None:
        from runner.ops.console import remember_ray_logs

        remember_ray_logs(log_dir)


def run_stages(exp: Experiment, names: tuple[str, ...]) -> None:
    """Run the named stages in order; each one skips work that is already current."""
    from runner.stages import STAGES

    for name in names:
        started = time.time()
        log.info("== %s ==", name)
        STAGES[name].load().run(exp)
        exp.manifest.record(name, time.time() - started)
