"""write_report on a synthetic frame set: every figure written, one self-contained HTML."""

import base64
import re

import numpy as np
import polars as pl
import pytest

from analysis.align import align_and_mask
from analysis.pca import pca_frame
from analysis.report import write_report
from analysis.suite import cross_layer_frame, task_cka_frame
from analysis.tsne import tsne_frame

CLUSTERS = {"sentiment": ["sst2", "imdb"], "translation": ["wmt14", "wmt16", "para"], "nli": ["rte", "anli"],
            "closed_qa": ["arc"], "unseen": ["cosmos", "wic"]}
ALL_FIGURES = {
    "fig2_cka_by_layer", "fig3_cka_representative_clusters", "fig4_tsne_selected_layers", "fig5_pca_dims",
    "fig6a_corr_flesch_kincaid", "fig6b_corr_coleman_liau", "fig7_cka_unseen", "fig8_cka_clusters_1",
    "fig9_cka_clusters_2", "fig10_corr_data_size", "fig11_tsne_pretrained", "fig12_tsne_multitask",
    "layer_map", "cross_layer_cka",
}


@pytest.fixture(scope="module")
def frames():
    """A tiny study: 10 tasks, 9 layers; multitask diverges early and converges after a ramp at 3..5."""
    rng = np.random.default_rng(0)
    n_layers, n, d = 9, 24, 12
    layer = np.arange(n_layers)[:, None, None]
    ramp = np.clip((layer - 3) / 2, 0, 1)
    cka, cross, pca, stats, pooled, tasks, clusters = [], [], [], [], {"pretrained": [], "multitask": []}, [], []
    for ci, (cluster, names) in enumerate(CLUSTERS.items()):
        for task in names:
            control = rng.standard_normal((n_layers, n, d)) + 3 * ci * (np.arange(d) == ci)
            pre = control + (0.2 + 0.2 * layer) * rng.standard_normal((n_layers, n, d))
            mt = control + (0.9 - 0.8 * ramp) * rng.standard_normal((n_layers, n, d))
            ids = [f"{task}-{i}" for i in range(n)]
            _, al, _ = align_and_mask(
                {"pretrained": (ids, pre), "multitask": (ids[::-1], mt[:, ::-1]), "control": (ids, control)})
            cka.append(task_cka_frame(task, cluster, al, "control", ["pretrained", "multitask"], bootstrap=5))
            cross.append(cross_layer_frame(task, cluster, al, "control", ["pretrained", "multitask"]))
            pca.append(pca_frame(task, cluster, {m: al[m] for m in ("pretrained", "multitask")}))
            stats.append((task, cluster, int(rng.integers(100, 3000)), float(rng.normal(8, 2)), float(rng.normal(10, 2))))
            for m, arrays in pooled.items():
                arrays.append(al[m])
            tasks += [task] * n
            clusters += [cluster] * n
    ts = tsne_frame({m: np.concatenate(v, axis=1) for m, v in pooled.items()}, tasks, clusters,
                    layers=[0, 1, 4, 6, 8], perplexity=10, n_iter=120, max_points=120)
    return {
        "cka": pl.concat(cka),
        "cross_layer": pl.concat(cross),
        "pca": pl.concat(pca),
        "stats": pl.DataFrame(stats, schema=["task", "cluster", "train_size", "flesch_kincaid", "coleman_liau"], orient="row"),
        "tsne": ts,
    }


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
    assert "<h2>Layer map</h2>" in html and "transition" in html
    assert "Headline numbers" in html and "tasks (seen / unseen)" in html and "8 / 2" in html
    assert "src='figures/" not in html and "http" not in html  # self-contained


def test_layer_map_found_on_synthetic_ramp(tmp_path, frames):
    from analysis.layer_map import layer_map_frame

    lm = layer_map_frame(frames["cka"])
    functions = lm.sort("layer")["function"].to_list()
    assert functions[0] == "shared" and functions[-1] == "refinement"
    trans = lm.filter(pl.col("function") == "transition")["layer"].to_list()
    assert trans and 2 <= min(trans) and max(trans) <= 6  # the ramp is at layers 3..5


def test_report_with_cka_only(tmp_path, frames):
    cka = frames["cka"].select("experimental", "task", "cluster", "layer", "cka")
    report = write_report(tmp_path, {"cka": cka})
    written = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert {"fig2_cka_by_layer", "fig7_cka_unseen", "layer_map", "fig8_cka_clusters_1"} <= written
    assert not written & {"fig5_pca_dims", "fig4_tsne_selected_layers", "fig6a_corr_flesch_kincaid"}
    assert len(_embedded_pngs(report.read_text())) == len(written)


def test_report_requires_cka(tmp_path, frames):
    with pytest.raises(KeyError):
        write_report(tmp_path, {"pca": frames["pca"]})
    with pytest.raises(ValueError):
        write_report(tmp_path, {"cka": frames["cka"].drop("layer")})
