"""Type stubs of embedapt's native core (embedapt/_core, a pybind11 module)."""

import enum
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

class Code(enum.IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    NOT_FOUND = 2
    CORRUPTION = 3
    IO_ERROR = 4
    BUSY = 5
    NOT_SUPPORTED = 6
    FAILED_PRECONDITION = 7
    UNAVAILABLE = 8
    INTERNAL = 9

class Error(Exception):
    """A failed call: `code` says what kind of failure, `message` names the input and the problem."""

    code: Code
    message: str

# What a record's metadata may hold: its JSON text's bytes, its fields, a
# field name's bytes, a list's items.
MAX_METADATA_BYTES: int
MAX_METADATA_FIELDS: int
MAX_METADATA_FIELD_BYTES: int
MAX_METADATA_LIST_ITEMS: int

class Results:
    """One query's results, best first."""

    ids: List[str]
    @property
    def scores(self) -> npt.NDArray[np.float32]: ...
    @property
    def payloads(self) -> List[bytes]: ...
    @property
    def metadata(self) -> List[Dict[str, Any]]:
        """Each hit's metadata ({} if it has none)."""
    def __len__(self) -> int: ...

class RetrainScore:
    """Validation hit@top_k, MRR@top_k and the reciprocal rank at any depth over the logged queries."""

    hit: float
    mrr: float
    rr: float

class RetrainReport:
    """What Store.retrain did (embedapt::RetrainReport, embedapt/learn.h)."""

    decision: str
    """"no-gain" (nothing stored, the store is unchanged), "stored" (not activated: activate="never"),
    "not-better" (stored, not activated: the active version scores at least as well) or "activated"."""
    version: int
    """The stored version (0: none)."""
    previous_active: int
    """The version active when retrain began (0: none)."""
    queries: int
    pairs: int
    dropped_hits: int
    """Logged hits whose document is no longer stored (skipped)."""
    folds: int
    top_k: int
    base: RetrainScore
    """The base model (no adapter)."""
    adapter: RetrainScore
    """Each query scored by a fold net that never saw it."""
    incumbent: RetrainScore
    """The previously active version, if any."""
    hit_gain: float
    """Mean per-query hit@top_k gain of `adapter` over the base."""
    hit_gain_ci95: Tuple[float, float]
    """Its 95% confidence interval (paired, normal approximation)."""
    rr_gain: float
    """Mean per-query reciprocal-rank gain over the base (must not be negative to ship)."""
    rr_gain_ci95: Tuple[float, float]
    log_rank_gain: float
    """Mean per-query log(base rank) - log(adapter rank): the tested statistic."""
    log_rank_gain_ci95: Tuple[float, float]
    gain_z: float
    """log_rank_gain in standard errors; the adapter ships when gain_z >= min_gain_z
    and neither hit_gain nor rr_gain is negative."""
    min_gain_z: float
    summary: str
    """One line: the estimated gain with its interval, the rule and the outcome (what `retrain` prints)."""
    epochs_run: int
    read_seconds: float
    train_seconds: float
    store_seconds: float

class Store:
    """A vector store in a directory: a FAISS index persisted in RocksDB.

    Thread-safe: any number of threads search while one writes. One handle per
    store and process at a time (a second open raises Error with Code.BUSY).
    """

    @staticmethod
    def open(path: str, *, dim: int = 0, metric: str = "cosine", index: str = "Flat",
             create_if_missing: bool = True, sync_writes: bool = False, trust_code: bool = False) -> Store:
        """Opens or creates the store. dim, metric ("cosine", "ip", "l2") and index (a FAISS factory
        string) are fixed at creation; on an existing store 0 / the defaults mean "as stored"."""
    @property
    def path(self) -> str: ...
    @property
    def dim(self) -> int: ...
    def close(self) -> None:
        """Persists and releases the store; later calls raise Error(FAILED_PRECONDITION)."""
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: Any) -> None: ...
    def upsert(self, id: str, vector: npt.ArrayLike, payload: bytes = b"",
               metadata: Optional[Mapping[str, Any]] = None) -> None:
        """Inserts or replaces the record `id`, metadata included. Metadata is a dict of fields a filter
        can test: strings, numbers, bools or lists of strings (limits in embedapt/store.h, Record)."""
    def upsert_batch(self, ids: Sequence[str], vectors: npt.ArrayLike, payloads: Sequence[bytes] = (),
                     metadata: Sequence[Optional[Mapping[str, Any]]] = ()) -> None:
        """All or nothing. `vectors` is (len(ids), dim); payloads and metadata, if given, one per id."""
    def remove(self, id: str) -> None: ...
    def remove_matching(self, filter: Mapping[str, Any]) -> int:
        """Removes every record whose metadata matches `filter`, atomically; returns how many."""
    def get(self, id: str) -> Tuple[npt.NDArray[np.float32], bytes, Dict[str, Any]]:
        """The raw vector, payload and metadata of `id`; Error(NOT_FOUND) if absent."""
    def records(self) -> List[Tuple[str, bytes, Dict[str, Any]]]:
        """Every (id, payload, metadata), in id order."""
    def search(self, query: npt.ArrayLike, k: int = 10, filter: Optional[Mapping[str, Any]] = None, *,
               ef_search: int = 0, nprobe: int = 0, ids_only: bool = False) -> Results:
        """Nearest neighbours of a raw query vector, through the active adapter. With `filter`, only
        records whose metadata matches are searched (inside the index search: min(k, matches) hits).
        A filter is the Mongo-style dict of embedapt/store.h (Filter), e.g.
        {"tenant": "acme", "year": {"$gte": 2020}, "$or": [{"lang": "da"}, {"lang": {"$in": ["de", "sv"]}}]}
        with $eq $ne $gt $gte $lt $lte $in $nin $contains $not $and $or; a bad one raises
        Error(INVALID_ARGUMENT) naming the operator or field.
        ef_search (HNSW) and nprobe (IVF): the index's search-time knobs, 0 for its default; one the
        index has not, or out of range, raises Error(INVALID_ARGUMENT). ids_only: hits carry id and
        score only (payload b"", metadata {}), read from memory instead of RocksDB: the same hits,
        faster (SearchOptions in embedapt/store.h)."""
    def search_batch(self, queries: npt.ArrayLike, k: int = 10,
                     filter: Optional[Mapping[str, Any]] = None, *, ef_search: int = 0, nprobe: int = 0,
                     ids_only: bool = False) -> List[Results]: ...
    def log_query(self, query: npt.ArrayLike, result_ids: Sequence[str]) -> int:
        """Logs a query (its raw vector) and what it returned; the same vector gets the same id."""
    def log_hit(self, query_id: int, doc_id: str) -> None:
        """Logs that `doc_id` answered query `query_id`: what retrain learns from."""
    def adapters(self) -> List[Dict[str, Any]]:
        """The stored adapter versions (version, parent, config, metrics, data_fingerprint, created_unix)."""
    def activate(self, version: int) -> None:
        """Makes `version` the adapter searches apply (0: none), atomically."""
    def rollback(self) -> None: ...
    def export_adapter(self, version: int, dir: str) -> None:
        """Writes config.json + adapter.safetensors."""
    def import_adapter(self, dir: str, trust_code: bool = False) -> int:
        """Stores an exported adapter as a new version (not activated); returns its number."""
    def retrain(self, *, kind: str = "linear", side: str = "query", hidden: int = 1024, epochs: int = 0,
                lr: float = 0.0, loss: str = "", folds: int = 0, seed: int = 42, threads: int = 1,
                checkpoint_dir: str = "", checkpoint_every: int = 50, resume: bool = False,
                activate: str = "if-better", torchscript_archive: bytes = b"",
                trust_code: bool = False) -> RetrainReport:
        """Trains an adapter from the query log (embedapt::retrain, what `embedapt retrain` runs: the
        same options and store contents give the same adapter bytes) and stores it as a new version
        unless nothing beat the base clearly; activate is "never", "if-better" or "always".
        kind is "linear", "two-layer", a registered kind, or "torchscript" (torchscript_archive: the
        scripted module file's bytes; needs trust_code). 0 / "" mean the trainer's default. A log
        without signal is not an error: decision "no-gain"."""
    def set_embedder(self, identity: str) -> None: ...
    def stats(self) -> Dict[str, Any]: ...
    def verify(self) -> None:
        """Error(CORRUPTION) naming the first disagreement between the index and RocksDB."""
    def flush(self) -> None:
        """Makes everything written durable and snapshots the index."""

class Embedder:
    # timeout: seconds each request of a command: or openai: embedder may take (0: their defaults)
    def __init__(self, spec: str, *, cache_dir: str = "", use_cache: bool = True, models_dir: str = "",
                 threads: int = 0, timeout: float = 0.0) -> None: ...
    @property
    def dim(self) -> int: ...
    @property
    def identity(self) -> str: ...
    def embed(self, texts: Sequence[str], *, query: bool = False) -> npt.NDArray[np.float32]: ...

def evaluate(store: Store, dataset: str, embedder: Embedder, *, adapters: Sequence[str] = (), top_k: int = 5,
             seed: int = 0, trust_code: bool = False, html: str = "", json: str = "") -> Dict[str, Any]: ...
