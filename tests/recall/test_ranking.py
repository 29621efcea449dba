"""The BM25 ranking behind the context endpoint."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memory_store.recall.bm25 import bm25
from memory_store.recall.text import terms


def test_stemming_meets_plural_and_verb_forms_in_english_and_french() -> None:
    assert set(terms("seats")) == set(terms("seat"))
    assert set(terms("flights")) & set(terms("flight"))
    assert set(terms("voyages")) & set(terms("voyage"))
    assert set(terms("épicée")) & set(terms("epicee"))  # accents folded


def test_terms_drop_stop_words_of_each_language_and_fold_case() -> None:
    # A word gets the stem of each language where they differ ("plane", French "plan").
    assert terms("The Window SEATS of a plane") == ["window", "seat", "plane", "plan"]
    assert terms("le chat de la voisine") == ["chat", "voisin"]


def test_a_document_sharing_rare_query_terms_outranks_one_sharing_common_ones() -> None:
    documents = ["window seat on flights", "aisle seat on trains", "seat cushions at home"]
    scores = bm25("window seat", documents)
    assert scores[0] > scores[1] > 0 and scores[0] > scores[2]


@given(st.lists(st.text(max_size=40), max_size=8), st.text(max_size=20))
def test_scores_are_finite_non_negative_and_zero_without_shared_terms(
    documents: list[str], query: str
) -> None:
    scores = bm25(query, documents)
    assert len(scores) == len(documents)
    query_terms = set(terms(query))
    for document, score in zip(documents, scores, strict=True):
        assert score >= 0 and score == score  # not NaN
        if not query_terms & set(terms(document)):
            assert score == 0
