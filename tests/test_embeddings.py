import numpy as np

from memp_core.embeddings import Embedder


def test_packaged_model_loads_offline_with_384_dimensions(embedder: Embedder) -> None:
    vecs = embedder.embed(["heat some egg and put it in garbagecan"])
    assert len(vecs) == 1 and len(vecs[0]) == 384
    assert abs(np.linalg.norm(vecs[0]) - 1.0) < 1e-4


def test_similar_sentences_score_higher_than_unrelated(embedder: Embedder) -> None:
    a, b, c = embedder.embed_array(
        [
            "heat some egg and put it in garbagecan",
            "put a hot egg in the garbage can",
            "which river is longer, the Ebro or the Tagus",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_empty_batch_gives_empty_matrix(embedder: Embedder) -> None:
    assert embedder.embed_array([]).shape == (0, 384)
