"""The registry holds the authors' tasks (tasks/paper_tasks.yaml) in the paper's 12 clusters, and resolves selections."""

from __future__ import annotations

import pytest

import tasks
from tasks import CLUSTERS, UnknownTaskError, all_tasks, get_task, resolve_tasks

# Table 1 of the paper (+ the two text-formatting tasks, placed in translation on purpose).
PAPER_CLUSTERS = {
    "nli": {"anli_r1", "anli_r2", "anli_r3", "cb", "mnli_matched", "mnli_mismatched", "qnli", "snli", "wnli", "rte"},
    "commonsense": {"copa", "hellaswag", "piqa", "story_cloze"},
    "closed_book_qa": {"arc_challenge", "arc_easy", "natural_questions", "trivia_qa"},
    "coreference": {"definite_pronoun_resolution", "winogrande", "wsc"},
    "struct_to_text": {"common_gen", "dart", "e2e_nlg", "web_nlg_en"},
    "translation": {"wmt14_enfr", "wmt16_translate_csen", "wmt16_translate_deen", "wmt16_translate_fien",
                    "wmt16_translate_roen", "wmt16_translate_ruen", "wmt16_translate_tren", "para_crawl_enes",
                    "true_case", "word_segment"},
    "summarization": {"aeslc", "cnn_dailymail", "gigaword", "multi_news", "newsroom", "samsum", "xsum",
                      "ag_news_subset", "opinion_abstracts_rotten_tomatoes", "opinion_abstracts_idebate",
                      "wiki_lingua_english_en"},
    "reading_comprehension": {"bool_q", "drop", "multirc", "openbookqa", "squad_v1", "squad_v2"},
    "sentiment": {"imdb_reviews", "sentiment140", "sst2", "yelp_polarity_reviews"},
    "paraphrase": {"glue_mrpc", "glue_qqp", "paws_wiki", "stsb"},
    "reading_comprehension_commonsense": {"cosmos_qa", "record"},
    "unseen": {"coqa", "quac", "wic", "trec", "cola", "math_dataset", "fix_punct"},
}


def test_registry_holds_every_task_of_the_authors_list_and_its_unseen_cluster():
    names = [s.name for s in all_tasks()]
    assert len(names) == len(set(names))
    assert len(tasks.PAPER_TASKS) == len(set(tasks.PAPER_TASKS)) == sum(map(len, PAPER_CLUSTERS.values()))
    paper = [s for s in all_tasks() if s.name in tasks.PAPER_TASKS]
    assert {s.name for s in paper} == set(tasks.PAPER_TASKS) and len(paper) == len(tasks.PAPER_TASKS)
    assert sum(s.unseen for s in paper) == len(PAPER_CLUSTERS["unseen"])
    assert len(resolve_tasks(["paper"])) == len(tasks.PAPER_TASKS)
    assert len(resolve_tasks(["seen"])) == sum(not s.unseen for s in all_tasks())


def test_tasks_beyond_the_papers_are_real_text_stand_ins():
    extra = [s for s in all_tasks() if s.name not in tasks.PAPER_TASKS]
    assert extra
    for spec in extra:
        assert spec.packaged is not None and spec.generator is None, spec.name
        assert spec.doc and spec.packaged.licence, spec.name  # what it stands in for, and under what licence
    assert {s.name for s in resolve_tasks(["real"])} == {s.name for s in all_tasks() if s.packaged is not None}


def test_every_task_is_in_its_paper_cluster():
    assert list(CLUSTERS) == list(PAPER_CLUSTERS)  # the 12 clusters, paper order
    for cluster, expected in PAPER_CLUSTERS.items():
        assert set(CLUSTERS[cluster]) & set(tasks.PAPER_TASKS) == expected, cluster
    for spec in all_tasks():
        assert spec.unseen == (spec.cluster == "unseen")


def test_text_formatting_tasks_keep_their_flan_cluster_for_provenance():
    for name in ("true_case", "word_segment", "fix_punct"):
        assert get_task(name).flan_cluster == "text_formatting"


def test_specs_are_complete():
    for spec in all_tasks():
        assert spec.metric in ("accuracy", "rouge_l", "bleu")
        assert spec.hub.id or spec.hub.note, spec.name  # a source, or why there is none
        assert spec.submix_name or spec.name not in tasks.PAPER_TASKS, spec.name
        if spec.hub.id:
            assert "train" in spec.hub.splits, spec.name
        if spec.options is not None:
            assert not spec.per_row_options and len(spec.options) >= 2
    assert get_task("wmt16_translate_deen").metric == "bleu"
    assert get_task("xsum").metric == "rouge_l"
    assert get_task("cb").hub.revision == "refs/convert/parquet"  # super_glue ships a script


def test_resolve_expands_clusters_and_keeps_order_without_duplicates():
    got = [s.name for s in resolve_tasks(["sst2", "sentiment", "cola", "sst2"])]
    assert got == ["sst2", "imdb_reviews", "sentiment140", "yelp_polarity_reviews", "movie_snippets",
                   "tweet_sentiment", "amazon_snippets", "cola"]
    unseen = {s.name for s in resolve_tasks(["unseen"])}
    assert unseen == {s.name for s in all_tasks() if s.unseen} and PAPER_CLUSTERS["unseen"] < unseen
    assert len(resolve_tasks(["paper"])) == len(tasks.PAPER_TASKS) and len(resolve_tasks("all")) == len(all_tasks())


@pytest.mark.parametrize("bad, suggestion", [("anli_r4", "anli_r3"), ("sumarization", "summarization"),
                                             ("imdb_review", "imdb_reviews"),
                                             ("unsen", "unseen")])
def test_misspelled_name_gives_one_line_error_with_closest_name(bad, suggestion):
    with pytest.raises(UnknownTaskError) as info:
        resolve_tasks(["sst2", bad])
    message = str(info.value)
    assert "\n" not in message
    assert repr(bad) in message and repr(suggestion) in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownTaskError):
        get_task(bad)


def test_clip_names_fields_the_templates_render():
    # A misspelt clip field would silently cut nothing.
    from tasks.templates import template_fields

    clipped = [spec for spec in all_tasks() if spec.clip]
    assert clipped
    for spec in clipped:
        assert set(spec.clip) <= template_fields(spec), spec.name
