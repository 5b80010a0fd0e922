"""Embeds the 10-K datasets with sentence-transformers for the adapter experiments.

Writes, for each of train (Lyft) and val (Uber): <name>_docs.npy, <name>_queries.npy
(float32, L2-normalised, rows in the JSON's order) and <name>_labels.json
({"doc_ids": [...], "query_ids": [...], "positive": [doc row of each query]}).
Used only until the C++ encoder can produce the same vectors; never at run time.

usage: python embed_10k.py DATA_DIR MODEL_DIR OUT_DIR
"""
import json
import sys

import numpy as np
from sentence_transformers import SentenceTransformer


def main(data_dir, model_dir, out_dir):
    model = SentenceTransformer(model_dir, device="cpu")
    for name in ("train", "val"):
        with open(f"{data_dir}/{name}_dataset.json") as f:
            ds = json.load(f)
        doc_ids = list(ds["corpus"])
        query_ids = list(ds["queries"])
        row = {d: i for i, d in enumerate(doc_ids)}
        positive = [row[ds["relevant_docs"][q][0]] for q in query_ids]
        for kind, texts in (("docs", [ds["corpus"][d] for d in doc_ids]),
                            ("queries", [ds["queries"][q] for q in query_ids])):
            vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
            np.save(f"{out_dir}/{name}_{kind}.npy", vecs.astype(np.float32))
        with open(f"{out_dir}/{name}_labels.json", "w") as f:
            json.dump({"doc_ids": doc_ids, "query_ids": query_ids, "positive": positive}, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
