#!/usr/bin/env python3
"""The seed's walkthrough, from LlamaIndex, on embedapt.

Train an adapter on the Lyft 2021 10-K questions and measure it on Uber's,
as LlamaIndex's adapter fine-tuning walkthrough does, with embedapt under
LlamaIndex: each corpus is a VectorStoreIndex on an EmbedaptVectorStore
(the offline default model through EmbedaptEmbedding); the training questions
are logged as feedback (question -> its source node); the store retrains an
adapter from that log; the adapter moves to the Uber store; LlamaIndex's own
retriever (top-k 5) scores base and adapter, and embedapt's evaluator scores
the same store: the two must agree (hit@5 and MRR within 0.002).

    .venv/bin/python tools/examples/llamaindex_adapter.py [--data ../shared/data/10k] [--work DIR]

Runs offline. Exit status 1 if the two scorings disagree.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import time

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode

import embedapt
from embedapt.llama_index import EmbedaptEmbedding, EmbedaptVectorStore

TOP_K = 5
TOLERANCE = 0.002


def build_index(path, dataset, embed_model):
    """A VectorStoreIndex over the dataset's chunks, one node per chunk (its id the chunk id)."""
    store = EmbedaptVectorStore.open(str(path), embed_model=embed_model)
    nodes = [TextNode(id_=doc_id, text=text) for doc_id, text in dataset["corpus"].items()]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embed_model)
    return store, index


def retriever_scores(index, dataset):
    """hit@5 and MRR@5 of LlamaIndex's retriever: the seed's own measure."""
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    hits = reciprocal = 0.0
    for query_id, question in dataset["queries"].items():
        relevant = set(dataset["relevant_docs"][query_id])
        ids = [n.node.node_id for n in retriever.retrieve(question)]
        rank = next((i + 1 for i, node_id in enumerate(ids) if node_id in relevant), 0)
        hits += rank > 0
        reciprocal += 1.0 / rank if rank else 0.0
    n = len(dataset["queries"])
    return hits / n, reciprocal / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("EMBEDAPT_DATA", "../shared/data/10k"),
                        help="the 10-K folder (train_dataset.json, val_dataset.json)")
    parser.add_argument("--work", default="build/llamaindex_example", help="where the two stores go (replaced)")
    parser.add_argument("--adapter", default="linear", help="linear or two-layer")
    args = parser.parse_args()

    data = pathlib.Path(args.data)
    train_path, val_path = data / "train_dataset.json", data / "val_dataset.json"
    for path in (train_path, val_path):
        if not path.is_file():
            sys.exit(f"llamaindex_adapter: {path}: not found (--data names the 10-K folder)")
    train, val = (json.loads(p.read_text()) for p in (train_path, val_path))
    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    embed_model = EmbedaptEmbedding()
    started = time.time()

    # 1. Lyft: the index, and its training questions logged as feedback.
    lyft, _ = build_index(work / "lyft", train, embed_model)
    for query_id, question in train["queries"].items():
        for doc_id in train["relevant_docs"][query_id]:
            lyft.feedback(question, doc_id)
    print(f"lyft: {len(train['corpus'])} chunks, {len(train['queries'])} questions logged as feedback")

    # 2. Retrain from the log (what `embedapt retrain` runs), and export the new version.
    report = lyft.client.retrain(kind=args.adapter, activate="never")
    print(f"retrain: {report.queries} logged queries, {report.folds}-fold validation hit@{report.top_k} / "
          f"MRR@{report.top_k}: base {report.base.hit:.4f} / {report.base.mrr:.4f}, adapter "
          f"{report.adapter.hit:.4f} / {report.adapter.mrr:.4f}; {report.train_seconds:.1f} s training")
    print(report.summary)
    if report.decision == "no-gain":
        sys.exit("llamaindex_adapter: retrain stored no adapter: nothing beat the base on validation")
    lyft.client.export_adapter(report.version, str(work / "adapter"))
    lyft.close()

    # 3. Uber: the base, then the adapter, through LlamaIndex's retriever.
    uber, uber_index = build_index(work / "uber", val, embed_model)
    base = retriever_scores(uber_index, val)
    version = uber.client.import_adapter(str(work / "adapter"))
    uber.client.activate(version)
    adapted = retriever_scores(uber_index, val)

    # 4. embedapt's evaluator on the same store and questions.
    report = embedapt.evaluate(uber.client, val_path, adapters=["active"], top_k=TOP_K)
    uber.close()
    ours = [(r["hit_rate"], r["mrr"]) for r in report["results"]]

    print(f"\nuber: {len(val['queries'])} questions, top-{TOP_K}")
    print(f"{'system':<10}  {'LlamaIndex hit@5':>16}  {'MRR':>6}  {'embedapt eval hit@5':>19}  {'MRR':>6}")
    agree = True
    for name, li, ev in (("base", base, ours[0]), (args.adapter, adapted, ours[1])):
        print(f"{name:<10}  {li[0]:>16.4f}  {li[1]:>6.4f}  {ev[0]:>19.4f}  {ev[1]:>6.4f}")
        agree = agree and abs(li[0] - ev[0]) <= TOLERANCE and abs(li[1] - ev[1]) <= TOLERANCE
    print(f"\nLlamaIndex's retriever and embedapt eval {'agree' if agree else 'DISAGREE'} "
          f"(within {TOLERANCE}); {time.time() - started:.0f} s")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
