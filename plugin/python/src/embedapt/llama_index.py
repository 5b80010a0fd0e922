"""LlamaIndex on embedapt: a vector store, an embedding model and feedback.

    from embedapt.llama_index import EmbedaptEmbedding, EmbedaptVectorStore

    embed_model = EmbedaptEmbedding()                       # the offline default model
    store = EmbedaptVectorStore.open("kb.db", embed_model=embed_model)
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=embed_model)
    hits = index.as_retriever(similarity_top_k=5).retrieve("what was the revenue?")
    store.feedback("what was the revenue?", hits[0].node.node_id)   # the user found it relevant

Searches go through the store's active adapter, so a retrained and activated
adapter changes what LlamaIndex retrieves without re-embedding anything. The
store keeps each node whole (text, metadata, relationships) in its record's
payload, so an index reloads from the store directory alone
(VectorStoreIndex.from_vector_store). The node's metadata fields that
embedapt can index (strings, numbers, bools, lists of strings) and its
ref_doc_id also go into the record's metadata, so LlamaIndex's MetadataFilters
run inside the store's search (to_filter says which operators translate).
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

import embedapt

__all__ = ["EmbedaptEmbedding", "EmbedaptVectorStore", "to_filter"]

# LlamaIndex's operators that are one embedapt operator on the field.
_FIELD_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}
# Those that hold a list field against a list of values: any / all of the values are in it.
_LIST_OPERATORS = {FilterOperator.ANY: "$or", FilterOperator.ALL: "$and"}


def to_filter(filters: MetadataFilters) -> Dict[str, Any]:
    """LlamaIndex's MetadataFilters as an embedapt filter (the dict
    Store.search takes). Translated: == != > >= < <= in nin contains, any and
    all (a list field holding any / all of the values), the conditions and /
    or / not (none of the filters holds, as LlamaIndex defines it) and nested
    MetadataFilters. text_match, text_match_insensitive and is_empty have no
    embedapt form: they raise embedapt.Error(NOT_SUPPORTED) naming the operator
    and key. Comparisons follow embedapt's rules: > >= < <= take numbers, and
    a value never equals one of another type ("1" != 1)."""
    parts = [_condition(f) for f in filters.filters]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": parts}
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}
    raise _error(embedapt.Code.NOT_SUPPORTED, f"MetadataFilters condition {condition!r}: embedapt has no form of it")


def _condition(f: Union[MetadataFilter, ExactMatchFilter, MetadataFilters]) -> Dict[str, Any]:
    if isinstance(f, MetadataFilters):
        return to_filter(f)
    operator = getattr(f, "operator", FilterOperator.EQ)
    if operator in _FIELD_OPERATORS:
        return {f.key: {_FIELD_OPERATORS[operator]: f.value}}
    if operator in _LIST_OPERATORS and isinstance(f.value, list) and f.value:
        return {_LIST_OPERATORS[operator]: [{f.key: {"$contains": v}} for v in f.value]}
    if operator in _LIST_OPERATORS:
        raise _error(embedapt.Code.INVALID_ARGUMENT,
                     f"MetadataFilter {operator.value!r} on {f.key!r}: expected a non-empty list of values")
    raise _error(embedapt.Code.NOT_SUPPORTED,
                 f"MetadataFilter operator {operator.value!r} (key {f.key!r}): embedapt filters cannot express it; "
                 f"they have {', '.join(o.value for o in [*_FIELD_OPERATORS, *_LIST_OPERATORS])}")


def _error(code: embedapt.Code, message: str) -> embedapt.Error:
    """An embedapt.Error as the binding raises them (str: "CodeName: message")."""
    name = "".join(word.capitalize() for word in code.name.split("_"))
    error = embedapt.Error(f"{name}: {message}")
    error.code, error.message = code, message
    return error


def _indexed_metadata(node_dict: Dict[str, Any]) -> Dict[str, Any]:
    """The fields of a node a filter can test, as LlamaIndex's vector stores
    expose them (node_to_metadata_dict's: the node's metadata and its
    document ids, less the serialised node) and embedapt can index. Others
    (nested objects, lists of numbers, None, names embedapt refuses, and
    whatever passes the store's limits on metadata: the document ids first,
    which delete() filters on, then the first fields that fit) stay in the
    payload only: a node with a long text field was refused outright."""
    fields: Dict[str, Any] = {}
    size = len("{}")  # of json.dumps(fields), as the binding writes it: "{" + ", ".join(entries) + "}"
    for key in sorted(node_dict, key=lambda k: k not in ("ref_doc_id", "doc_id", "document_id")):
        value = node_dict[key]
        if key in ("_node_content", "_node_type") or key.startswith("$") or not _indexable(value):
            continue
        if not 0 < len(key.encode()) <= embedapt._core.MAX_METADATA_FIELD_BYTES:
            continue
        if len(fields) == embedapt._core.MAX_METADATA_FIELDS:
            break
        entry = len(json.dumps({key: value}).encode()) - len("{}") + (len(", ") if fields else 0)
        if size + entry <= embedapt._core.MAX_METADATA_BYTES:
            fields[key] = value
            size += entry
    return fields


def _indexable(value: Any) -> bool:
    if isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return (isinstance(value, list) and len(value) <= embedapt._core.MAX_METADATA_LIST_ITEMS
            and all(isinstance(v, str) for v in value))


class EmbedaptEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model over embedapt's embedders ("default", the
    offline model; "bert:DIR", "openai:MODEL", "command:CMD"), with embedapt's
    cache: each distinct text is embedded once. Queries and documents are
    embedded on their own sides, as the store's adapters expect."""

    spec: str = "default"
    cache_dir: str = ""
    models_dir: str = ""
    embed_batch_size: int = 64

    @classmethod
    def class_name(cls) -> str:
        return "EmbedaptEmbedding"

    @property
    def embedder(self) -> embedapt.Embedder:
        return embedapt.get_embedder(self.spec, self.cache_dir, self.models_dir)

    def _get_query_embedding(self, query: str) -> List[float]:
        return self.embedder.embed([query], query=True)[0].tolist()

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self.embedder.embed([text], query=False)[0].tolist()

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self.embedder.embed(list(texts), query=False).tolist()


class EmbedaptVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store kept in an embedapt store directory.

    Each node is one record: its id is the node id, its vector the node's
    embedding (raw: the active adapter is applied at search time), its payload
    the node as LlamaIndex serialises it. Scores are the store's (cosine and ip:
    higher is better; l2: squared distance, lower is better).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    embed_model: Optional[EmbedaptEmbedding] = None

    _store: embedapt.Store = PrivateAttr()

    @classmethod
    def open(cls, path: str, *, embed_model: Optional[EmbedaptEmbedding] = None, dim: int = 0,
             metric: str = "cosine", index: str = "Flat", trust_code: bool = False) -> "EmbedaptVectorStore":
        """Opens (or creates) the store at `path`. With `embed_model` the store
        records its embedder (so `embedapt eval` and `retrain` check they match)
        and `dim` defaults to its dimension."""
        if embed_model is not None and dim == 0:
            dim = embed_model.embedder.dim
        store = embedapt.Store.open(str(path), dim=dim, metric=metric, index=index, trust_code=trust_code)
        if embed_model is not None:
            store.set_embedder(embed_model.embedder.identity)
        out = cls(path=str(path), embed_model=embed_model)
        out._store = store
        return out

    @classmethod
    def class_name(cls) -> str:
        return "EmbedaptVectorStore"

    @property
    def client(self) -> embedapt.Store:
        return self._store

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        if not nodes:
            return []
        ids = [node.node_id for node in nodes]
        vectors = np.asarray([node.get_embedding() for node in nodes], dtype=np.float32)
        node_dicts = [node_to_metadata_dict(node, remove_text=False, flat_metadata=False) for node in nodes]
        self._store.upsert_batch(ids, vectors, [json.dumps(d).encode() for d in node_dicts],
                                 [_indexed_metadata(d) for d in node_dicts])
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Removes every node of the source document `ref_doc_id`, atomically."""
        self._store.remove_matching({"ref_doc_id": ref_doc_id})

    def get_nodes(self, node_ids: Optional[List[str]] = None,
                  filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        if filters is not None:
            # The store filters inside a search, and has no filtered scan to offer here.
            raise _error(embedapt.Code.NOT_SUPPORTED, "EmbedaptVectorStore.get_nodes: filters (query with them)")
        if node_ids is None:
            return [_to_node(payload) for _, payload, _ in self._store.records()]
        return [_to_node(self._store.get(node_id)[1]) for node_id in node_ids]

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        """Removes the nodes `node_ids`, or every node `filters` match (atomically), not both at once.

        An id with no node raises NOT_FOUND before any node is removed."""
        if filters is not None and node_ids is not None:
            raise _error(embedapt.Code.NOT_SUPPORTED,
                         "EmbedaptVectorStore.delete_nodes: node_ids and filters together")
        if filters is not None:
            self._store.remove_matching(to_filter(filters))
        node_ids = list(node_ids or [])
        for node_id in node_ids:  # all there, or nothing removed (one missing id removed those before it)
            self._store.get(node_id)
        for node_id in node_ids:
            self._store.remove(node_id)

    def clear(self) -> None:
        self._store.remove_matching({})

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Searches through the active adapter among the nodes `query.filters`
        (to_filter) and `query.doc_ids` (source documents) allow."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise NotImplementedError(f"EmbedaptVectorStore: query mode {query.mode} is not supported")
        if query.node_ids:
            raise _error(embedapt.Code.NOT_SUPPORTED, "EmbedaptVectorStore.query: node_ids (filter by metadata)")
        if query.query_embedding is None:
            raise ValueError("EmbedaptVectorStore: the query has no embedding")
        parts = [to_filter(query.filters)] if query.filters is not None else []
        if query.doc_ids:
            parts.append({"ref_doc_id": {"$in": list(query.doc_ids)}})
        hits = self._store.search(np.asarray(query.query_embedding, dtype=np.float32), query.similarity_top_k,
                                  filter={"$and": parts} if parts else None)
        nodes = [_to_node(payload) for payload in hits.payloads]
        return VectorStoreQueryResult(nodes=nodes, similarities=hits.scores.tolist(), ids=list(hits.ids))

    def feedback(self, query: Union[str, Sequence[float]], node_id: str, result_ids: Sequence[str] = ()) -> int:
        """Records that `node_id` answered `query` (a user's click, a thumbs-up,
        a labelled question), for retrain to learn from. `query` is the question
        (embedded by the store's embed_model) or its raw query embedding.
        `result_ids` is what the user was shown, if known. Returns the logged
        query's id."""
        if isinstance(query, str):
            if self.embed_model is None:
                raise ValueError("EmbedaptVectorStore.feedback: a text query needs the store's embed_model")
            vector = self.embed_model.embedder.embed([query], query=True)[0]
        else:
            vector = np.asarray(query, dtype=np.float32)
        query_id = self._store.log_query(vector, list(result_ids) or [node_id])
        self._store.log_hit(query_id, node_id)
        return query_id

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """The store persists itself in its own directory; this makes what was
        written durable and snapshots the index, whatever `persist_path` says."""
        self._store.flush()

    def close(self) -> None:
        self._store.close()


def _to_node(payload: bytes) -> BaseNode:
    return metadata_dict_to_node(json.loads(payload))
