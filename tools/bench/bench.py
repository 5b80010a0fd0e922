"""Runs the quality and training-time benchmark: embedapt against LlamaIndex (the seed).

  bench.py --embedapt BIN --data DIR --work DIR --out RAW.json [--repeats 3] [--full]

Two protocols, each with a training set and a test set over the Uber corpus:
  in-corpus  Uber's queries split 50/50 by query (`embedapt split`, seed 42):
             train on one half, test on the other, same corpus;
  transfer   train on Lyft (train_dataset.json), test on Uber (val_dataset.json).

Each run of a protocol times, in turn: embedapt ingest (a fresh embedding cache,
so it pays for embedding), embedapt retrain linear and two-layer (the product's
defaults), then LlamaIndex's linear adapter with the seed's settings (4 epochs).
In-corpus runs --repeats times, the repeats interleaved with transfer's run;
transfer runs once (its LlamaIndex training alone takes minutes), --repeats times
with --full. Training is seeded, so quality comes from the first run: every
adapter scored by `embedapt eval` on the in-corpus store (the Uber corpus; per-query
scores kept for paired tests), and LlamaIndex's also scored the seed's own way.
--full adds LlamaIndex's two-layer adapter (25 epochs) and a full fine-tune of the
base model, once each. Every step's wall and CPU time (its process and children)
and the load average go to RAW.json for report.py.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT_SEED = 42
SEED_EPOCHS = {"linear": 4, "two-layer": 25}


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def timed(command: list, env: dict = None) -> dict:
    """Runs `command`, failing loudly; returns its wall and CPU seconds."""
    log(" ".join(command))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"bench: failed ({result.returncode}): {' '.join(command)}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "load_avg_1m": load, "stdout": result.stdout[-2000:]}


def machine() -> dict:
    cpu = platform.processor()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kb / 2**20, 1), "kernel": platform.release()}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.embedapt = os.path.abspath(args.embedapt)
        self.work = os.path.abspath(args.work)
        self.python = sys.executable
        self.env = dict(os.environ)
        # Untimed commands (evaluation, scoring) share the cache of the first in-corpus
        # ingest, which holds the Uber corpus; timed ingests each get a fresh cache.
        self.cache = self.path("in-corpus", "run1", "cache")
        self.env["EMBEDAPT_CACHE_DIR"] = self.cache

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def cli(self, *args: str, cache: str = None) -> dict:
        env = self.env
        if cache is not None:
            env = dict(self.env, EMBEDAPT_CACHE_DIR=cache)
        return timed([self.embedapt, *args], env=env)

    def peer(self, *args: str) -> dict:
        return timed([self.python, os.path.join(HERE, "peer.py"), *args, "--embedapt", self.embedapt])

    def embedapt_run(self, protocol: dict, run: str) -> dict:
        """Ingest the training set with a cold cache, retrain both built-in kinds, export them."""
        root = self.path(protocol["name"], run)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        db = os.path.join(root, "db")
        steps = {
            "ingest": self.cli(
                "ingest", db, "--dataset", protocol["train"], "--embedder", "default", cache=os.path.join(root, "cache")
            )
        }
        for kind in ("linear", "two-layer"):
            steps[f"retrain_{kind}"] = self.cli("retrain", db, "--adapter", kind, "--out", os.path.join(root, kind))
        return steps

    def llamaindex_run(self, protocol: dict, run: str, kind: str) -> dict:
        root = self.path(protocol["name"], run)
        timing = os.path.join(root, f"llamaindex-{kind}.timing.json")
        outer = self.peer(
            "train",
            "--dataset", protocol["train"],
            "--adapter", kind,
            "--epochs", str(SEED_EPOCHS[kind]),
            "--out", os.path.join(root, f"llamaindex-{kind}.li"),
            "--export", os.path.join(root, f"llamaindex-{kind}"),
            "--identity", self.identity(os.path.join(root, "db")),
            "--timing", timing,
        )  # fmt: skip
        with open(timing) as f:
            inner = json.load(f)
        return dict(inner, process_wall_s=outer["wall_s"], process_cpu_s=outer["cpu_s"], load_avg_1m=outer["load_avg_1m"])

    def identity(self, db: str) -> str:
        """The embedder identity of the store `db`, which our adapters carry: LlamaIndex's export gets it too."""
        return json.loads(self.cli("inspect", db, "--json")["stdout"])["embedder"]

    def test_db(self) -> str:
        """The store both protocols' test queries search: in-corpus's first, of the Uber corpus."""
        return self.path("in-corpus", "run1", "db")

    def evaluate(self, protocol: dict, adapters: dict, db: str = None, embedder: str = "default") -> dict:
        """embedapt eval of the base and `adapters` (name -> dir) on the test set."""
        root = self.path(protocol["name"])
        tag = "finetuned" if embedder != "default" else "adapters"
        args = ["eval", db or self.test_db(), "--dataset", protocol["test"], "--embedder", embedder]
        for adapter_dir in adapters.values():
            args += ["--adapter", adapter_dir]
        args += ["--json", os.path.join(root, f"eval-{tag}.json"), "--per-query", os.path.join(root, f"eval-{tag}.jsonl")]
        self.cli(*args)
        with open(os.path.join(root, f"eval-{tag}.json")) as f:
            report = json.load(f)
        per_query = {}
        with open(os.path.join(root, f"eval-{tag}.jsonl")) as f:
            for line in f:
                row = json.loads(line)
                scores = {k: row[k] for k in ("hit", "mrr", "ndcg@10")}
                per_query.setdefault(row["name"], {})[row["query_id"]] = scores
        names = ["base" if embedder == "default" else "finetuned"] + list(adapters)
        results = {}
        for name, result in zip(names, report["results"]):
            results[name] = dict(result, per_query=per_query.get(result["name"], {}))
        return {"results": results, "comparisons": report["comparisons"]}

    def finetune(self, protocol: dict) -> dict:
        """The ceiling: the whole model fine-tuned, its own store of the test corpus, scored."""
        root = self.path(protocol["name"])
        model_dir = os.path.join(root, "finetuned-model")
        timing = os.path.join(root, "finetune.timing.json")
        model = os.path.join(os.path.dirname(os.path.dirname(HERE)), "models", "all-MiniLM-L6-v2")
        timed(
            [self.python, os.path.join(HERE, "finetune.py"), "--model", model, "--dataset", protocol["train"],
             "--out", model_dir, "--timing", timing]
        )  # fmt: skip
        spec = f"bert:{model_dir}"
        db = os.path.join(root, "finetuned-db")
        shutil.rmtree(db, ignore_errors=True)
        self.cli("ingest", db, "--dataset", protocol["test"], "--embedder", spec, "--pairs", "none")
        scored = self.evaluate(protocol, {}, db=db, embedder=spec)
        with open(timing) as f:
            return dict(json.load(f), result=scored["results"]["finetuned"])

    def seed_way(self, protocol: dict, kind: str) -> dict:
        out = self.path(protocol["name"], f"seedway-{kind}.json")
        self.peer(
            "score",
            "--dataset", protocol["test"],
            "--adapter-dir", self.path(protocol["name"], "run1", f"llamaindex-{kind}.li"),
            "--adapter", kind,
            "--cache-dir", self.cache,
            "--out", out,
        )  # fmt: skip
        with open(out) as f:
            scores = json.load(f)
        return {k: scores[k] for k in ("n_queries", "top_k", "hit_rate", "mrr")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedapt", required=True, help="the embedapt binary")
    parser.add_argument("--data", required=True, help="the 10k data folder")
    parser.add_argument("--work", required=True, help="scratch directory (stores, adapters, caches)")
    parser.add_argument("--out", required=True, help="raw results JSON for report.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="add the slow peers")
    args = parser.parse_args()

    os.makedirs(args.work, exist_ok=True)
    bench = Bench(args)
    data = os.path.abspath(args.data)
    halves = [bench.path("uber-half-a.json"), bench.path("uber-half-b.json")]
    val = os.path.join(data, "val_dataset.json")
    bench.cli("split", val, "--fraction", "0.5", "--seed", str(SPLIT_SEED), "--out-a", halves[0], "--out-b", halves[1])
    protocols = [
        {"name": "in-corpus", "train": halves[0], "test": halves[1], "runs": args.repeats},
        {"name": "transfer", "train": os.path.join(data, "train_dataset.json"), "test": val,
         "runs": args.repeats if args.full else 1},
    ]  # fmt: skip

    started = time.time()
    timings = {p["name"]: [] for p in protocols}
    for repeat in range(1, args.repeats + 1):
        for protocol in protocols:
            if repeat > protocol["runs"]:
                continue
            run = f"run{repeat}"
            steps = bench.embedapt_run(protocol, run)
            steps["llamaindex_linear"] = bench.llamaindex_run(protocol, run, "linear")
            timings[protocol["name"]].append(steps)

    quality = {}
    for protocol in protocols:
        name = protocol["name"]
        run1 = bench.path(name, "run1")
        adapters = {
            "embedapt-linear": os.path.join(run1, "linear"),
            "embedapt-two-layer": os.path.join(run1, "two-layer"),
            "llamaindex-linear": os.path.join(run1, "llamaindex-linear"),
        }
        extra = {}
        if args.full:
            extra["llamaindex_two_layer"] = bench.llamaindex_run(protocol, "run1", "two-layer")
            adapters["llamaindex-two-layer"] = os.path.join(run1, "llamaindex-two-layer")
        # retrain exports nothing when no adapter beats the identity on its
        # validation split (it never ships a regression): that adapter is the base.
        not_shipped = [a for a, d in adapters.items() if not os.path.isfile(os.path.join(d, "config.json"))]
        for adapter in not_shipped:
            log(f"{adapter}: retrain shipped no adapter; scored as the base")
            del adapters[adapter]
        quality[name] = bench.evaluate(protocol, adapters)
        quality[name]["not_shipped"] = not_shipped
        quality[name]["seed_way"] = {"llamaindex-linear": bench.seed_way(protocol, "linear")}
        if args.full:
            quality[name]["seed_way"]["llamaindex-two-layer"] = bench.seed_way(protocol, "two-layer")
            extra["finetune"] = bench.finetune(protocol)
        quality[name]["full_runs"] = extra

    raw = {
        "machine": machine(),
        "full": args.full,
        "repeats": args.repeats,
        "split_seed": SPLIT_SEED,
        "protocols": {p["name"]: {"train": p["train"], "test": p["test"]} for p in protocols},
        "timings": timings,
        "quality": quality,
        "seconds": time.time() - started,
    }
    with open(args.out, "w") as f:
        json.dump(raw, f, indent=1)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
