"""`layerwise` command line: one subcommand per stage, plus run, sweep and tasks."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import yaml

from runner.config import ConfigError, load_config, preset_path

DEFAULT_PRESET = "demo"


def _overrides(pairs: list[str]) -> dict:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set training.seed=1")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help=f"experiment YAML (default: experiments/{DEFAULT_PRESET}.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.seed=1 (repeatable)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else start Ray in-process)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (jobs, resources, paths) and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerwise",
        description="Where does multi-task learning happen in instruction-tuned LLMs? "
                    "Train E and per-task controls (Ray Train + DeepSpeed + LoRA), extract last-token "
                    "states (Ray Data), compare them layer by layer with CKA (Ray tasks + Polars).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {
        "run": "train, evaluate, extract, analyze and report (skips finished work; --resume is implied)",
        "train": "LoRA-tune the multi-task model E and one control per task",
        "evaluate": "score pretrained, E and each control on every task's held-out test examples",
        "extract": "last-token hidden states at every layer for pretrained, E and each control",
        "analyze": "layerwise CKA and statistics into Polars frames",
        "report": "figures and report.html from the frames",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        _common(p)
        if name == "run":
            p.add_argument("--resume", action="store_true",
                           help="continue a stopped run (the default: finished work is always reused)")
    sweep_p = sub.add_parser("sweep", help="the study over LoRA ranks x seeds, every cell trained side by side",
                             description="the study over LoRA ranks x seeds, every cell trained side by side")
    _common(sweep_p)
    sweep_p.add_argument("--lora-ranks", default="8", help="comma-separated LoRA ranks (default: 8)")
    sweep_p.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default: 0,1)")
    tasks_p = sub.add_parser("tasks", help="list every task with its cluster, source and sizes",
                             description="list every task with its cluster, source and sizes")
    tasks_p.add_argument("--config", type=Path, default=None, help="only the tasks this experiment selects")
    tasks_p.add_argument("--out", type=Path, default=None, help="also write the catalog as Parquet here")
    tasks_p.add_argument("--preview", metavar="TASK", help="show a task's templates rendered on examples")
    return parser


def _load(args: argparse.Namespace):
    path = args.config or preset_path(DEFAULT_PRESET)
    config = load_config(path, _overrides(getattr(args, "overrides", [])))
    out = args.out or Path("results") / config.name
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not out.is_absolute():
        # Under `ray job submit` the cwd is a temporary copy of the working dir, deleted afterwards.
        logging.getLogger("layerwise").warning(
            "--out %s is relative inside a Ray job: results go to a temporary directory that Ray deletes; "
            "pass an absolute path on shared storage, e.g. --out /mnt/shared/results/%s", out, config.name)
    return config, out


def _cmd_tasks(args: argparse.Namespace) -> None:
    import polars as pl

    import tasks as suite

    if args.preview:
        print(suite.templates.preview(args.preview))
        return
    catalog = suite.catalog()
    if args.config:
        config, _ = _load(argparse.Namespace(config=args.config, overrides=[]))
        chosen = [spec.name for spec in suite.resolve_tasks(config.tasks.select)]
        catalog = catalog.filter(pl.col("task").is_in(chosen))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, tbl_hide_dataframe_shape=True,
                   tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True, fmt_str_lengths=40):
        print(catalog)
    print(f"{catalog.height} tasks in {catalog['cluster'].n_unique()} clusters")
    if args.out:
        from runner.store import atomic_write_parquet
        atomic_write_parquet(catalog, Path(args.out) / "tasks.parquet")


def _cmd_stages(args: argparse.Namespace) -> None:
    from runner.dryrun import print_plan
    from runner.pipeline import STAGES, check_inputs, connect, prepare, run_stages

    config, out = _load(args)
    exp = prepare(config, out)
    stages = STAGES if args.command == "run" else (args.command,)
    if args.dry_run:
        print_plan(exp, stages)
        return
    check_inputs(exp, stages[0])
    if any(stage != "report" for stage in stages):
        connect(args.address)
    run_stages(exp, stages)
    print(f"layerwise: {args.command} finished; results in {exp.plan.out}")


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "fix your input": shown as one line. Anything else keeps its traceback."""
    from runner.models import ModelUnavailableError
    from runner.store import ArtifactError
    from runner.train import TrainingFailed
    from tasks import TaskSourceError, UnknownTaskError

    return (ConfigError, UnknownTaskError, TaskSourceError, ModelUnavailableError, ArtifactError, TrainingFailed,
            FileNotFoundError)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so an in-process Ray cluster is shut down with the driver."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _cmd_sweep(args: argparse.Namespace) -> None:
    from runner.dryrun import print_plan
    from runner.pipeline import connect
    from runner.sweep import parse_ints, prepare_sweep, run_sweep

    config, out = _load(args)
    ranks, seeds = parse_ints(args.lora_ranks, "--lora-ranks"), parse_ints(args.seeds, "--seeds")
    exps = prepare_sweep(config, out, ranks, seeds)
    if args.dry_run:
        for cell, exp in exps.items():
            print(f"== cell {cell.label}")
            print_plan(exp, ("train", "evaluate", "extract", "analyze", "report"))
        return
    connect(args.address)
    frames = run_sweep(exps, out)
    print(f"layerwise: sweep of {len(exps)} cells finished; {frames['cka'].height} CKA rows in {out / 'cka.parquet'}")


def main(argv: list[str] | None = None) -> int:
    _exit_on_sigterm()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # `layerwise` alone runs the embedded demo, the study end to end.
        args = parser.parse_args(["run", *(argv or [])])
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    user_errors = _user_errors()
    try:
        if args.command == "tasks":
            _cmd_tasks(args)
        elif args.command == "sweep":
            _cmd_sweep(args)
        else:
            _cmd_stages(args)
    except user_errors as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"layerwise: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
