#!/usr/bin/env python3
"""The sentence-transformers side of the encoder benchmark: the same model,
texts, order, batch size (32) and thread count as tools/bench/encoder_bench.cpp.
Prints one JSON line; given the C++ vectors (.npy), adds the lowest cosine
between the two implementations over all texts.

    encoder_bench.py MODEL_DIR DATASET.json THREADS REPEATS [CPP_VECTORS.npy]
"""
import json
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, dataset_path = sys.argv[1], sys.argv[2]
    threads, repeats = int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    with open(dataset_path, encoding="utf-8") as f:
        dataset = json.load(f)
    documents = list(dataset["corpus"].values())
    queries = list(dataset["queries"].values())
    prompts = model.prompts or {}
    query_prompt = prompts.get("query") or None
    document_prompt = next((prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), None)

    model.encode(queries[:32], prompt=query_prompt, batch_size=32)  # warm-up, as the C++ side does
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        docs = model.encode(documents, prompt=document_prompt, batch_size=32, convert_to_numpy=True)
        qs = model.encode(queries, prompt=query_prompt, batch_size=32, convert_to_numpy=True)
        seconds.append(time.perf_counter() - start)
    seconds.sort()
    report = {"impl": "sentence-transformers " + __import__("sentence_transformers").__version__
                      + " (PyTorch " + torch.__version__ + ")",
              "threads": threads, "documents": len(documents), "queries": len(queries),
              "seconds": seconds, "median_seconds": seconds[len(seconds) // 2]}
    if len(sys.argv) > 5:
        ours = np.load(sys.argv[5])
        theirs = np.concatenate([docs, qs]).astype(np.float64)
        ours = ours.astype(np.float64)
        cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        report["min_cosine_vs_cpp"] = float(cos.min())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
