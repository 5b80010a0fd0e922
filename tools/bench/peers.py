"""The peers' side of the peers table (tools/bench/peers.sh): Chroma and LanceDB,
fed the vectors peers_bench wrote (DIR/docs.npy, queries.npy, truth.json) the
way an app would feed them: through their Python clients, in batches of 1000
rows, embeddings given (no embedding function), each batch written before the
next.

  peers.py chroma  --vectors DIR --dir DB [--m 16] [--ef-construction 40]
                   [--ef 16,32,64,128,256] [--repeats 1]
  peers.py lancedb --vectors DIR --dir DB [--ivf-pq] [--nprobes 10,20,50] [--refine-factor 10]
                   [--repeats 1]

Prints one JSON line in peers_bench's shape: build wall seconds (ingest, plus
what makes every row searchable) and the process's CPU seconds over it (every
thread: rusage), the bytes on disk, the open time (a fresh client, the table,
the first query), and per search setting recall@10 against the exact answer
and QPS one query at a time (median over repeats). IVF_PQ is searched at each
--nprobes value as it is and with --refine-factor (its best refine * k
candidates re-ranked by their full vectors).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time

import numpy as np

BATCH = 1000
K = 10


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def disk_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def sweep(search, queries, truth, settings, repeats):
    """recall@10 and single-query QPS of `search(query, setting) -> ids` per setting."""
    out = []
    for setting in settings:
        qps, recall = [], 0.0
        for r in range(repeats):
            start = time.perf_counter()
            found = [search(q, setting) for q in queries]
            qps.append(len(queries) / (time.perf_counter() - start))
            if r == 0:
                recall = sum(len(set(f) & set(t)) / K for f, t in zip(found, truth)) / len(queries)
        out.append({"setting": setting, "recall_at_10": recall, "qps": statistics.median(qps)})
    return out


def chroma(args, docs, queries, truth, row):
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    ids = [str(i) for i in range(len(docs))]
    client = chromadb.PersistentClient(path=args.dir, settings=settings)
    # Cosine over unit vectors ranks as the store's cosine does. max_neighbors
    # is hnswlib's M (2 * M links on level 0, as FAISS's HNSW<M>).
    hnsw = {"space": "cosine", "max_neighbors": args.m, "ef_construction": args.ef_construction}
    collection = client.create_collection("docs", configuration={"hnsw": hnsw}, embedding_function=None)
    cpu, start = cpu_seconds(), time.perf_counter()
    for begin in range(0, len(docs), BATCH):
        collection.add(ids=ids[begin : begin + BATCH], embeddings=docs[begin : begin + BATCH])
    row["ingest_s"] = time.perf_counter() - start
    # One query after the last add: rows still waiting in Chroma's log for its
    # index would make it wait, and that wait belongs to the build.
    collection.query(query_embeddings=queries[:1], n_results=K, include=[])
    row["build_s"] = time.perf_counter() - start
    row["build_cpu_s"] = cpu_seconds() - cpu
    row["settings"] = {"M": args.m, "ef_construction": args.ef_construction, "space": "cosine"}
    row["version"] = chromadb.__version__
    del collection, client
    chromadb.api.client.SharedSystemClient.clear_system_cache()  # a real reopen, not the cached client
    row["disk_bytes"] = disk_bytes(args.dir)

    start = time.perf_counter()
    client = chromadb.PersistentClient(path=args.dir, settings=settings)
    collection = client.get_collection("docs", embedding_function=None)
    collection.query(query_embeddings=queries[:1], n_results=K, include=[])
    row["open_s"] = time.perf_counter() - start

    results = []
    for ef in args.ef:
        # A new ef_search reaches the search only through a fresh client: the
        # open one keeps the loaded index with the setting it was loaded with.
        collection.modify(configuration={"hnsw": {"ef_search": ef}})
        del collection, client
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        client = chromadb.PersistentClient(path=args.dir, settings=settings)
        collection = client.get_collection("docs", embedding_function=None)
        collection.query(query_embeddings=queries[:1], n_results=K, include=[])  # loads the index

        def search(q, _):
            return [int(i) for i in collection.query(query_embeddings=[q], n_results=K, include=[])["ids"][0]]

        results += sweep(search, queries, truth, [ef], args.repeats)
    row["search"] = [dict(r, ef_search=r.pop("setting")) for r in results]


def lancedb(args, docs, queries, truth, row):
    import lancedb as lance
    import pyarrow as pa
    from lancedb.index import IvfPq

    dim = docs.shape[1]
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), dim))])

    def batch(begin):
        rows = docs[begin : begin + BATCH]
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim)
        return pa.Table.from_arrays([pa.array(np.arange(begin, begin + len(rows))), vectors], schema=schema)

    db = lance.connect(args.dir)
    cpu, start = cpu_seconds(), time.perf_counter()
    table = db.create_table("docs", schema=schema)
    for begin in range(0, len(docs), BATCH):
        table.add(batch(begin))
    row["ingest_s"] = time.perf_counter() - start
    if args.ivf_pq:
        # IVF_PQ with LanceDB's own choices of partitions and sub-vectors.
        index_start = time.perf_counter()
        table.create_index("vector", config=IvfPq(distance_type="cosine"))
        row["index_s"] = time.perf_counter() - index_start
    row["build_s"] = time.perf_counter() - start
    row["build_cpu_s"] = cpu_seconds() - cpu
    row["version"] = lance.__version__
    del table, db
    row["disk_bytes"] = disk_bytes(args.dir)

    start = time.perf_counter()
    table = lance.connect(args.dir).open_table("docs")
    table.search(queries[0]).distance_type("cosine").limit(K).select(["id", "_distance"]).to_arrow()
    row["open_s"] = time.perf_counter() - start

    def search(q, setting):
        query = table.search(q).distance_type("cosine").limit(K).select(["id", "_distance"])
        if setting:
            nprobes, refine = setting
            query = query.nprobes(nprobes)
            if refine:  # re-rank refine * k candidates by their full vectors
                query = query.refine_factor(refine)
        return query.to_arrow()["id"].to_pylist()

    settings = [(n, r) for r in (0, args.refine_factor) for n in args.nprobes] if args.ivf_pq else [None]
    results = sweep(search, queries, truth, settings, args.repeats)
    row["search"] = [
        dict(r, nprobes=s[0], refine_factor=s[1]) if s else r for r, s in zip(results, settings)
    ]
    for r in row["search"]:
        r.pop("setting")


def numbers(text):
    return [int(x) for x in text.split(",") if x]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=["chroma", "lancedb"])
    parser.add_argument("--vectors", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef", type=numbers, default=[16, 32, 64, 128, 256])
    parser.add_argument("--ivf-pq", action="store_true")
    parser.add_argument("--nprobes", type=numbers, default=[10, 20, 50])
    parser.add_argument("--refine-factor", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    docs = np.load(os.path.join(args.vectors, "docs.npy"))
    queries = np.load(os.path.join(args.vectors, "queries.npy"))
    with open(os.path.join(args.vectors, "truth.json")) as f:
        truth = json.load(f)
    shutil.rmtree(args.dir, ignore_errors=True)
    index = "HNSW" if args.peer == "chroma" else ("IVF_PQ" if args.ivf_pq else "exact")
    row = {"peer": args.peer, "index": index, "n": len(docs), "queries": len(queries),
           "repeats": args.repeats, "load_before": load_average()}
    (chroma if args.peer == "chroma" else lancedb)(args, docs, queries, truth, row)
    row["load_after"] = load_average()
    print(json.dumps(row), flush=True)
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
