"""The peer: LlamaIndex's adapter fine-tuning (the seed), fed by embedapt's own embedder.

LlamaIndex sees embedapt's `default` embedder through `embedapt embed --no-cache`,
wrapped as a LlamaIndex BaseEmbedding, so both engines start from identical base
vectors and LlamaIndex pays the real embedding cost of every text in every batch
of every epoch, as the seed does with an in-process model.

  peer.py train  --embedapt BIN --dataset F --adapter linear|two-layer --epochs N
                 --out DIR --export DIR --identity ID [--timing F]
  peer.py score  --embedapt BIN --dataset F [--adapter-dir DIR --adapter KIND] [--cache-dir DIR] --out F

`train` runs EmbeddingAdapterFinetuneEngine with the seed's settings, keeps
LlamaIndex's own output in --out and exports the adapter into embedapt's exchange
directory (config.json + adapter.safetensors) in --export. `score` retrieves the
seed's way: a VectorStoreIndex retriever with similarity_top_k=5, hit rate and MRR
computed as the seed's notebook does.
"""

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, List, Tuple

import numpy as np
import torch
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import TextNode
from llama_index.embeddings.adapter import AdapterEmbeddingModel
from llama_index.embeddings.adapter.utils import LinearLayer, TwoLayerNN
from llama_index.finetuning import EmbeddingAdapterFinetuneEngine
from llama_index.finetuning.embeddings.common import EmbeddingQAFinetuneDataset
from safetensors.torch import save_file

# The seed's two-layer adapter: TwoLayerNN(dim, 1024, dim, bias=True, add_residual=True).
SEED_HIDDEN = 1024
TOP_K = 5


class EmbedaptEmbedding(BaseEmbedding):
    """embedapt's embedder as a LlamaIndex BaseEmbedding.

    Every call runs `embedapt embed --no-cache` on its texts (queries with
    --query, so they get the model's query prompt), so every call embeds anew;
    given `cache_dir` (scoring, which is not timed), it reads and fills that
    embedding cache instead. `prefetch` embeds many texts in one process and
    answers later single-text calls for them from memory: scoring uses it,
    training never does.
    """

    _embedapt: str = PrivateAttr()
    _spec: str = PrivateAttr()
    _cache: List[str] = PrivateAttr()
    _workdir: Any = PrivateAttr()
    _memo: dict = PrivateAttr()
    _launches: int = PrivateAttr(default=0)

    def __init__(self, embedapt: str, spec: str = "default", cache_dir: str = None, **kwargs: Any) -> None:
        super().__init__(model_name=f"embedapt:{spec}", **kwargs)
        self._embedapt = embedapt
        self._spec = spec
        self._cache = ["--cache-dir", cache_dir] if cache_dir else ["--no-cache"]
        self._workdir = tempfile.TemporaryDirectory(prefix="embedapt-peer-")  # removed with the model
        self._memo = {}

    @classmethod
    def class_name(cls) -> str:
        return "EmbedaptEmbedding"

    def embed(self, side: str, texts: List[str]) -> List[List[float]]:
        """Embeds every one of `texts` as queries (side "query") or documents, in one process."""
        return self._run(side, texts)

    def prefetch(self, side: str, texts: List[str]) -> None:
        """Embeds `texts` now; later single-text calls for them read these vectors."""
        self._memo.update(zip(((side, t) for t in texts), self._run(side, texts)))

    def _one(self, side: str, text: str) -> List[float]:
        vector = self._memo.get((side, text))
        return vector if vector is not None else self._run(side, [text])[0]

    def _run(self, side: str, texts: List[str]) -> List[List[float]]:
        source = os.path.join(self._workdir.name, "texts.jsonl")
        target = os.path.join(self._workdir.name, "vectors.npy")
        with open(source, "w") as f:
            f.writelines(json.dumps(t) + "\n" for t in texts)
        command = [self._embedapt, "embed", "--embedder", self._spec, *self._cache, "--input", source, "--out", target]
        if side == "query":
            command.append("--query")
        subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
        self._launches += 1
        return np.load(target).tolist()

    @property
    def launches(self) -> int:
        """How many embedding processes this model has run."""
        return self._launches

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._one("query", query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._one("text", text)

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self.embed("text", texts)


class EpochEmbeddingEngine(EmbeddingAdapterFinetuneEngine):
    """The seed's engine, with each epoch's texts embedded in one call per side.

    The seed embeds every query and chunk of every batch of every epoch, one
    call per text, with its model in process. Here the model lives in another
    process, and a launch per text would bill LlamaIndex for thousands of model
    loads. So when an epoch starts (the loader does not shuffle: batches come
    in dataset order) all its texts are embedded anew in one launch per side,
    and each batch takes its vectors in turn: the seed's embedding work, every
    epoch, at two launches an epoch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch: collections.deque = collections.deque()

    def smart_batching_collate(self, batch: List) -> Tuple[Any, Any]:
        if not self._epoch:
            examples = self.loader.dataset
            queries = self.embed_model.embed("query", [query for query, _ in examples])
            texts = self.embed_model.embed("text", [text for _, text in examples])
            self._epoch.extend(zip(examples, queries, texts))
        query_vectors, text_vectors = [], []
        for example in batch:
            expected, query_vector, text_vector = self._epoch.popleft()
            if expected != example:
                raise RuntimeError("the data loader's batches are not in dataset order")
            query_vectors.append(query_vector)
            text_vectors.append(text_vector)
        return torch.tensor(query_vectors), torch.tensor(text_vectors)


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def launch_seconds(embed_model: EmbedaptEmbedding, tries: int = 3) -> float:
    """Median wall time of one embedding process on one short text: what a
    launch costs beyond the embedding itself."""
    times = []
    for i in range(tries):
        start = time.perf_counter()
        embed_model.embed("text", [f"launch probe {i}"])
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def new_adapter(kind: str, dim: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return LinearLayer(dim, dim, bias=False)
    return TwoLayerNN(dim, SEED_HIDDEN, dim, bias=True, add_residual=True)


def export_adapter(model: torch.nn.Module, kind: str, identity: str, out_dir: str) -> None:
    """Writes `model` in embedapt's exchange format.

    LlamaIndex's modules name their tensors as embedapt's built-in kinds do
    ("linear.weight"; "linear1.*", "linear2.*", "residual_weight"), and compute
    the same functions: W x for `linear`, x + alpha * (W2 relu(W1 x + b1) + b2)
    for the residual `two-layer`.
    """
    dim = model.in_features
    config = {"kind": kind, "in_dim": dim, "out_dim": model.out_features, "side": "query", "embedder": identity}
    if kind == "linear":
        config["bias"] = bool(model.bias)
    else:
        config.update(hidden=model.hidden_features, activation=model.activation_fn_str)
    os.makedirs(out_dir, exist_ok=True)
    tensors = {name: t.detach().contiguous().float() for name, t in model.state_dict().items()}
    save_file(tensors, os.path.join(out_dir, "adapter.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def train(args: argparse.Namespace) -> None:
    dataset = EmbeddingQAFinetuneDataset.from_json(args.dataset)
    embed_model = EmbedaptEmbedding(args.embedapt)
    dim = len(embed_model.get_text_embedding("hello world"))
    launch_s = launch_seconds(embed_model)
    adapter = new_adapter(args.adapter, dim, args.seed)

    # The clock covers the engine and its training, as the seed's notebook
    # times finetune(); model loads are inside it (one per launch), see launch_s.
    launches0, wall0, cpu0 = embed_model.launches, time.perf_counter(), cpu_seconds()
    engine = EpochEmbeddingEngine(
        dataset,
        embed_model,
        model_output_path=args.out,
        adapter_model=adapter,
        dim=dim,
        epochs=args.epochs,
        device="cpu",
    )
    engine.finetune()
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    launches = embed_model.launches - launches0

    export_adapter(engine.model, args.adapter, args.identity, args.export)
    if args.timing:
        timing = {
            "wall_s": wall,
            "cpu_s": cpu,
            "pairs": len(dataset.queries),
            "epochs": args.epochs,
            "launches": launches,
            "launch_s": launch_s,
        }
        with open(args.timing, "w") as f:
            json.dump(timing, f)


def score(args: argparse.Namespace) -> None:
    """The seed's evaluation, step for step (its eval_utils.evaluate)."""
    dataset = EmbeddingQAFinetuneDataset.from_json(args.dataset)
    base = EmbedaptEmbedding(args.embedapt, cache_dir=args.cache_dir)
    # One process per side for the whole dataset; the retriever's per-query
    # calls then read these vectors (scoring is not timed).
    base.prefetch("query", list(dataset.queries.values()))
    base.prefetch("text", list(dataset.corpus.values()))
    embed_model = base
    if args.adapter_dir:
        adapter_cls = LinearLayer if args.adapter == "linear" else TwoLayerNN
        embed_model = AdapterEmbeddingModel(base, args.adapter_dir, adapter_cls=adapter_cls, device="cpu")

    nodes = [TextNode(id_=id_, text=text) for id_, text in dataset.corpus.items()]
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    per_query = []
    for query_id, query in dataset.queries.items():
        retrieved_ids = [node.node.node_id for node in retriever.retrieve(query)]
        expected_id = dataset.relevant_docs[query_id][0]
        rank = retrieved_ids.index(expected_id) + 1 if expected_id in retrieved_ids else None
        per_query.append({"query": query_id, "is_hit": rank is not None, "mrr": 0 if rank is None else 1 / rank})

    n = len(per_query)
    result = {
        "n_queries": n,
        "top_k": TOP_K,
        "hit_rate": sum(r["is_hit"] for r in per_query) / n,
        "mrr": sum(r["mrr"] for r in per_query) / n,
        "per_query": per_query,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train LlamaIndex's adapter and export it")
    t.add_argument("--embedapt", required=True, help="the embedapt binary")
    t.add_argument("--dataset", required=True, help="EmbeddingQAFinetuneDataset JSON to train on")
    t.add_argument("--adapter", choices=["linear", "two-layer"], default="linear")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--seed", type=int, default=0, help="torch seed for the two-layer adapter's init")
    t.add_argument("--out", required=True, help="LlamaIndex's own output directory")
    t.add_argument("--export", required=True, help="embedapt adapter directory to write")
    t.add_argument("--identity", required=True, help="embedder identity for the exported config")
    t.add_argument("--timing", help="JSON file for the training time (wall, CPU incl. embedding)")
    t.set_defaults(run=train)

    s = commands.add_parser("score", help="hit rate and MRR the seed's way")
    s.add_argument("--embedapt", required=True)
    s.add_argument("--dataset", required=True, help="EmbeddingQAFinetuneDataset JSON to score on")
    s.add_argument("--adapter-dir", help="LlamaIndex adapter output directory (none: the base model)")
    s.add_argument("--adapter", choices=["linear", "two-layer"], default="linear")
    s.add_argument("--cache-dir", help="embedding cache to read and fill (default: none, every text embedded)")
    s.add_argument("--out", required=True, help="JSON file for the scores")
    s.set_defaults(run=score)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
