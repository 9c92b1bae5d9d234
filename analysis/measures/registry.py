"""The measure registry: one record per similarity (pairwise) or per-layer (single) measure.

A measure module defines a function on views (analysis.measures.view.View) and decorates it:

    @register("linear_cka", kind="pairwise", higher_is_similar=True, description="...")
    def linear_cka(x: View, y: View) -> float: ...

Its keyword-only arguments are its parameters and their defaults. Everything else (frames, config,
runner) finds measures here by name, so adding one is one module and one decorator (the peft lesson).
Code outside the measure modules never spells a measure's name: it loops over the configured
selection, or asks PAPER_MEASURES for the measures the paper's claims are stated in.

The record also says how the field names the measure and what it follows (analysis.measures.ids):
`ids` are the measure's standard ids in the similarity-repository convention (nacloos/similarity-
repository, similarity/standardization.py), each mapped to the parameter values it fixes, e.g.
{"cka-kernel=(rbf-sigma={sigma})-hsic=gretton-score": {"debiased": False}} ({sigma} is read off the
id); `conventions` the choices a reader must know to compare values across papers; `reference` the
original implementation it follows (repo: function). get_measure/measure_info accept an id and
return the registration with the id's values as its defaults.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from analysis.measures.ids import bind_id, check_ids, describe_measure, example_ids
from analysis.measures.view import ArrayLike, View

Kind = Literal["pairwise", "single"]
# A selection: names, or (name, params) pairs, e.g. ["linear_cka", ("mutual_knn", {"k": 5})].
Selection = Sequence[str | tuple[str, Mapping[str, Any]]]

# The measures the paper's own claims are stated in (similarity: Figures 2-3, 6-10; dimensionality: Figure 5).
PAPER_MEASURES: dict[str, str] = {"similarity": "linear_cka", "dimensionality": "pca99"}
# What a run computes unless its config selects otherwise: the measures cheap enough for every
# preset. svcca, pwcca, cknna and rbf_cka are opt-in (analysis.measures in the config).
DEFAULT_MEASURES: tuple[str, ...] = ("linear_cka", "debiased_cka", "mutual_knn", "procrustes", "rsa",
                                     "pca99", "twonn_id", "prompt_entropy", "massive_ratio")


@dataclass(frozen=True)
class Measure:
    """A registered measure. `fn` takes views (one, or two row-aligned) and keyword parameters."""

    name: str
    kind: Kind
    fn: Callable[..., float]
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    higher_is_similar: bool | None = None  # pairwise: does a larger value mean more similar?
    meaning: str = ""  # what a value means (required for single measures)
    # CKA-type measures: the legacy cka.parquet columns (kernel, debiased, threshold). A key that is
    # also a parameter takes that parameter's value (see estimator_columns).
    estimator: Mapping[str, Any] | None = None
    # Batched every-layer-against-every-layer form: (xs [Lx,n,d], ys [Ly,n,d], **params) -> [Lx, Ly].
    cross_layer: Callable[..., np.ndarray] | None = None
    # Standard ids (similarity-repository convention) -> the parameter values each fixes.
    ids: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    conventions: Mapping[str, str] = field(default_factory=dict)  # e.g. {"centring": "columns, before the Gram"}
    reference: str = ""  # the original implementation it follows: "owner/repo path: function"
    standard_id: str = ""  # set on a registration bound to one id by get_measure(id)
    # Pairwise: the value of two identical representations (1 for every built-in similarity, 0 for a
    # distance); chance-calibration rescales to it (analysis.frames.calibration). None = unknown: no calibrated score.
    perfect: float | None = None

    def resolve_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with `params`; unknown names raise, ints given as floats (YAML) become ints."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise TypeError(f"{self.name}: unknown parameter(s) {unknown}; it takes {sorted(self.params) or 'none'}")
        out = dict(self.params)
        for key, value in params.items():
            default = out[key]
            if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
                value = int(value)
            out[key] = value
        return out

    def estimator_columns(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The estimator's legacy columns with this call's parameter values filled in."""
        if self.estimator is None:
            raise ValueError(f"{self.name} is not a CKA-type measure: it has no estimator columns")
        resolved = self.resolve_params(params)
        return {key: resolved.get(key, value) for key, value in self.estimator.items()}

    def compute(self, *views: View, **params: Any) -> float:
        """The measure on views, parameters already resolved (the frames' fast path). A similarity with
        a matrix whose rows are all the same point is undefined: nan, whatever the formula would give."""
        if self.kind == "pairwise" and not all(v.has_variance for v in views):
            return float("nan")
        return float(self.fn(*views, **params))

    def __call__(self, *arrays: ArrayLike | View, **params: Any) -> float:
        """f(x, y, **params) for pairwise, f(x, **params) for single; numpy or torch, CPU or CUDA."""
        arity = 2 if self.kind == "pairwise" else 1
        if len(arrays) != arity:
            raise TypeError(f"{self.name} is a {self.kind} measure: it takes {arity} matrix(es), got {len(arrays)}")
        views = [a if isinstance(a, View) else View(a) for a in arrays]
        if arity == 2 and views[0].n != views[1].n:
            raise ValueError(f"x and y must have the same rows (examples): {views[0].n} != {views[1].n}")
        return self.compute(*views, **self.resolve_params(params))


_REGISTRY: dict[str, Measure] = {}


def register(
    name: str,
    *,
    kind: Kind,
    description: str,
    higher_is_similar: bool | None = None,
    meaning: str = "",
    estimator: Mapping[str, Any] | None = None,
    cross_layer: Callable[..., np.ndarray] | None = None,
    ids: Mapping[str, Mapping[str, Any]] | None = None,
    conventions: Mapping[str, str] | None = None,
    reference: str = "",
    perfect: float | None = None,
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator: register `fn` under `name`; its keyword-only arguments are the parameters.
    `ids`, `conventions` and `reference`: see the module docstring."""

    def decorate(fn: Callable[..., float]) -> Callable[..., float]:
        if name in _REGISTRY:
            raise ValueError(f"measure {name!r} is already registered")
        if kind == "pairwise" and higher_is_similar is None:
            raise ValueError(f"{name}: a pairwise measure must say whether higher means more similar")
        if kind == "single" and not meaning:
            raise ValueError(f"{name}: a single measure must say what its value means")
        if kind not in ("pairwise", "single"):
            raise ValueError(f"{name}: kind must be 'pairwise' or 'single', not {kind!r}")
        signature = inspect.signature(fn).parameters.values()
        params = {p.name: p.default for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY}
        measure = Measure(name, kind, fn, description, params, higher_is_similar, meaning, estimator, cross_layer,
                          dict(ids or {}), dict(conventions or {}), reference, perfect=perfect)
        check_ids(measure, _REGISTRY.values())
        _REGISTRY[name] = measure
        return fn

    return decorate


def measure_info(name: str) -> Measure:
    """The registration of `name`, or of a standard id (bound to the id's parameter values, see
    analysis.measures.ids); unknown ones raise a one-line KeyError with the closest match."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    bound = bind_id(str(name), _REGISTRY.values())
    if bound is not None:
        return bound
    candidates = list(_REGISTRY) + [i for m in _REGISTRY.values() for i in example_ids(m)]
    close = difflib.get_close_matches(str(name), candidates, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"unknown measure {name!r}.{hint} Known: {', '.join(_REGISTRY)} "
                   "(and their standard ids: `layerwise measures`)") from None


def get_measure(name: str) -> Measure:
    """The measure as a plain callable: f(x, y, **params) or f(x, **params) -> float. `name` is a
    registered name or a standard id, e.g. "cka-kernel=linear-hsic=song-score"."""
    return measure_info(name)


def list_measures(kind: Kind | None = None) -> list[str]:
    """Registered names, pairwise ones first, each kind in registration order; optionally one kind."""
    if kind not in (None, "pairwise", "single"):
        raise ValueError(f"kind must be 'pairwise', 'single' or None, not {kind!r}")
    kinds = ("pairwise", "single") if kind is None else (kind,)
    return [name for k in kinds for name, m in _REGISTRY.items() if m.kind == k]


def resolve(selection: Selection, kind: Kind | None = None) -> list[tuple[Measure, dict[str, Any]]]:
    """(registration, resolved params) for each entry of a selection, checked against `kind`."""
    out, seen = [], set()
    for entry in selection:
        name, params = (entry, None) if isinstance(entry, str) else entry
        measure = measure_info(name)
        if kind is not None and measure.kind != kind:
            raise ValueError(f"{name} is a {measure.kind} measure; expected {kind} ones here")
        if measure.name in seen:  # by registered name: "pwcca" and "pwcca-score" are one measure's rows
            raise ValueError(f"{measure.name} is selected twice; rows of one measure must have one setting")
        seen.add(measure.name)
        out.append((measure, measure.resolve_params(params)))
    return out


def describe(names: Sequence[str] | None = None) -> str:
    """Plain text, one block per measure: name, kind, standard ids, conventions, original implementation."""
    return "\n\n".join(describe_measure(measure_info(n)) for n in (names or list_measures()))
