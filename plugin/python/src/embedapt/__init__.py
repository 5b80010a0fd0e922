"""embedapt: an embedded vector store that learns, from Python.

A thin layer over the C++ library (embedapt._core): the store (with its
retraining), the embedders and the evaluator. Calls that search, write,
embed, train or evaluate release the GIL. Failures raise embedapt.Error,
whose .code is an embedapt.Code and whose .message names the input and the
problem.
"""

from __future__ import annotations

import functools
import os
from typing import Optional, Sequence, Union

import numpy as np

from embedapt import _core
from embedapt._core import Code, Embedder, Error, Results, RetrainReport, RetrainScore, Store

__all__ = ["Code", "Embedder", "Error", "Results", "RetrainReport", "RetrainScore", "Store", "embed", "evaluate",
           "get_embedder"]


@functools.lru_cache(maxsize=8)
def get_embedder(spec: str = "default", cache_dir: str = "", models_dir: str = "") -> Embedder:
    """The embedder `spec` names ("default", "bert:DIR", "openai:MODEL",
    "command:CMD"), created once per process and arguments: loading a model is
    the slow part, so embed() and evaluate() reuse it."""
    return Embedder(spec, cache_dir=cache_dir, models_dir=models_dir)


def embed(texts: Sequence[str], embedder: str = "default", query: bool = False, *,
          cache_dir: str = "", models_dir: str = "") -> np.ndarray:
    """Embeds `texts` (as queries if `query`, else as documents) into a
    (len(texts), dim) float32 array."""
    if isinstance(texts, (str, bytes)):  # a str is a sequence too: each character was embedded
        raise TypeError("embed: texts must be a sequence of strings, not one string (embed([text]))")
    return get_embedder(embedder, cache_dir, models_dir).embed(list(texts), query=query)


def evaluate(store: Store, dataset: Union[str, os.PathLike], embedder: str = "default", *,
             adapters: Sequence[str] = (), top_k: int = 5, seed: int = 0, trust_code: bool = False,
             html: Optional[Union[str, os.PathLike]] = None, json: Optional[Union[str, os.PathLike]] = None,
             cache_dir: str = "", models_dir: str = "") -> dict:
    """Scores retrieval through `store`'s index on `dataset` (LlamaIndex JSON,
    a BEIR folder or JSONL pairs), as `embedapt eval` does: the base and each
    adapter ("active", a stored version number, an exported directory).

    Returns {"results": [...], "comparisons": [...], "unanswerable_queries": [...]};
    each result has the CLI's numbers (hit_rate, mrr, ndcg@10, recall@10, the
    95% intervals) and hit_at_k / mrr_at_k for k = 1..20. `html` writes the
    report page, `json` the CLI's --json file.
    """
    model = get_embedder(embedder, cache_dir, models_dir)
    return _core.evaluate(store, os.fspath(dataset), model, adapters=list(adapters), top_k=top_k, seed=seed,
                          trust_code=trust_code, html=os.fspath(html) if html else "",
                          json=os.fspath(json) if json else "")

