"""`--dry-run`: every stage's plan (jobs, resources, memory, artifact paths), without starting Ray."""

from __future__ import annotations

from runner.stages import STAGES


def print_plan(exp, stages: tuple[str, ...]) -> None:
    plan, cfg = exp.plan, exp.config
    print(f"experiment {cfg.name} (config {cfg.digest()}) -> {plan.out}")
    print(f"model {cfg.model.name}; {len(plan.tasks)} tasks in {len({t.cluster for t in plan.tasks})} clusters; "
          f"stages: {', '.join(stages)}")
    if cfg.model.experimental:
        e = "E (trained here)" if plan.multitask else "no E (training.multitask: false)"
        published = "; ".join(f"{m.label} = {m.kind} {m.name}" + (f" @ {m.revision}" if m.revision else "")
                              for m in exp.externals)
        print(f"experimental models: pretrained, {e}; published, loaded and not trained: {published}")
    for name in stages:
        for line in STAGES[name].load().describe(exp):
            print(line)
    if cfg.resources.gpus_per_worker:
        _print_gpu_estimate(exp)


def _print_gpu_estimate(exp) -> None:
    from runner.training.estimate import forward_gpu_hours, job_estimates, totals

    estimates = job_estimates(exp.plan)
    if estimates is None:
        print(f"GPU-hours: unknown (the shape of {exp.config.model.name!r} is not known offline; "
              "add it to runner.training.memory.KNOWN_SHAPES)")
        return
    gpu = estimates[0].gpu
    total = totals(estimates)
    forward = forward_gpu_hours(exp.plan) or 0.0
    print(f"GPU estimate on {gpu} (upper bound: every job to max_steps at max_length, at the MFU measured for "
          f"its memory plan): multitask {total['multitask']:,.0f} GPU-h, controls {total['controls']:,.0f} GPU-h, "
          f"extraction and evaluation {forward:,.1f} GPU-h; longest job {total['longest job hours']:,.1f} h")
    for estimate in estimates:
        print(f"  {estimate.describe()}")
