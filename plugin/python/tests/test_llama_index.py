"""embedapt.llama_index against the real llama-index-core: a query engine
answering from our store with LlamaIndex's MockLLM, persistence, deletion by
source document, and feedback that retrains what LlamaIndex retrieves."""

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import embedapt
from embedapt.llama_index import EmbedaptEmbedding, EmbedaptVectorStore

DOCUMENTS = {
    "bees": "Honey bees keep their hives warm in winter by clustering and shivering their flight muscles.",
    "volcano": "Basaltic lava from shield volcanoes flows far because it is hot and has little silica.",
    "tides": "Ocean tides rise and fall twice a day because the Moon's gravity pulls on the oceans.",
    "bread": "Sourdough bread rises because wild yeast and lactic acid bacteria ferment the flour.",
    "chess": "In chess, castling moves the king two squares toward a rook, which jumps over it.",
    "comets": "A comet's tail points away from the Sun, pushed by the solar wind and sunlight.",
}
TAGS = {"bees": ["nature", "insects"], "volcano": ["nature", "geology"], "tides": ["nature", "ocean"],
        "bread": ["food"], "chess": ["games"], "comets": ["space"]}


def build_index(path, embed_model):
    store = EmbedaptVectorStore.open(str(path), embed_model=embed_model)
    documents = [Document(text=text, doc_id=name,
                          metadata={"topic": name, "year": 2020 + i, "tags": TAGS[name], "source": {"page": i}})
                 for i, (name, text) in enumerate(DOCUMENTS.items())]
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model)
    return store, index


@pytest.fixture
def embed_model(cache_dir):
    return EmbedaptEmbedding(cache_dir=cache_dir)


def test_query_engine_with_mock_llm_answers_from_our_store(tmp_path, embed_model):
    store, index = build_index(tmp_path / "db", embed_model)
    assert store.client.stats()["count"] == len(DOCUMENTS)
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)
    response = engine.query("Why does lava from some volcanoes travel a long way?")
    top = response.source_nodes[0]
    assert top.node.ref_doc_id == "volcano"
    assert top.node.metadata == {"topic": "volcano", "year": 2021, "tags": ["nature", "geology"],
                                 "source": {"page": 1}}
    # MockLLM answers with the prompt it was given: the context came from our store.
    assert DOCUMENTS["volcano"] in str(response)
    store.close()


def test_text_metadata_and_embeddings_persist_in_the_store_directory(tmp_path, embed_model):
    store, index = build_index(tmp_path / "db", embed_model)
    before = index.as_retriever(similarity_top_k=3).retrieve("How do bees survive the cold?")
    store.persist("ignored")
    store.close()

    reopened = EmbedaptVectorStore.open(str(tmp_path / "db"), embed_model=embed_model)
    index = VectorStoreIndex.from_vector_store(reopened, embed_model=embed_model)
    after = index.as_retriever(similarity_top_k=3).retrieve("How do bees survive the cold?")
    assert [n.node.node_id for n in after] == [n.node.node_id for n in before]
    assert after[0].node.get_content() == DOCUMENTS["bees"]
    assert after[0].node.metadata["topic"] == "bees"
    assert [n.score for n in after] == pytest.approx([n.score for n in before])
    assert reopened.client.stats()["embedder"] == embed_model.embedder.identity
    reopened.close()


def test_delete_by_ref_doc_id(tmp_path, embed_model):
    store, index = build_index(tmp_path / "db", embed_model)
    index.delete_ref_doc("tides")
    assert store.client.stats()["count"] == len(DOCUMENTS) - 1
    retrieved = index.as_retriever(similarity_top_k=len(DOCUMENTS)).retrieve("Why do the tides change?")
    assert "tides" not in {n.node.ref_doc_id for n in retrieved}
    assert len(retrieved) == len(DOCUMENTS) - 1
    store.close()


def test_retriever_with_metadata_filters_returns_only_matching_nodes(tmp_path, embed_model):
    store, index = build_index(tmp_path / "db", embed_model)
    # What a filter can test is in the record's metadata (the nested "source" only in the payload).
    _, _, indexed = store.client.get(index.as_retriever(similarity_top_k=1).retrieve("bees")[0].node.node_id)
    assert indexed["topic"] == "bees" and indexed["ref_doc_id"] == "bees" and "source" not in indexed

    def topics(filters, question="Which natural things move?"):
        retrieved = index.as_retriever(similarity_top_k=len(DOCUMENTS), filters=filters).retrieve(question)
        return {n.node.metadata["topic"] for n in retrieved}

    def where(*filters, condition=FilterCondition.AND):
        return MetadataFilters(filters=list(filters), condition=condition)

    assert topics(where(MetadataFilter(key="year", value=2023, operator=FilterOperator.GTE))) == \
        {"bread", "chess", "comets"}
    assert topics(where(ExactMatchFilter(key="topic", value="bees"), MetadataFilter(key="topic", value="chess"),
                        condition=FilterCondition.OR)) == {"bees", "chess"}
    assert topics(where(MetadataFilter(key="tags", value=["ocean", "space"], operator=FilterOperator.ANY))) == \
        {"tides", "comets"}
    assert topics(where(MetadataFilter(key="tags", value=["nature", "geology"], operator=FilterOperator.ALL))) == \
        {"volcano"}
    assert topics(where(MetadataFilter(key="tags", value="nature", operator=FilterOperator.CONTAINS),
                        MetadataFilter(key="year", value=2021, operator=FilterOperator.NE))) == {"bees", "tides"}
    assert topics(where(MetadataFilter(key="topic", value=["bees", "volcano"], operator=FilterOperator.IN),
                        MetadataFilter(key="year", value=2024, operator=FilterOperator.GT),
                        condition=FilterCondition.NOT)) == {"tides", "bread", "chess"}
    nested = where(where(MetadataFilter(key="topic", value=["bread", "chess"], operator=FilterOperator.NIN),
                         MetadataFilter(key="year", value=2020, operator=FilterOperator.LTE),
                         condition=FilterCondition.OR),
                   MetadataFilter(key="year", value=2024, operator=FilterOperator.LT))
    assert topics(nested) == {"bees", "volcano", "tides"}
    assert topics(where(ExactMatchFilter(key="topic", value="none of them"))) == set()

    # A query engine with MockLLM answers from the matching nodes only.
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2,
                                   filters=where(MetadataFilter(key="tags", value="food",
                                                                operator=FilterOperator.CONTAINS)))
    response = engine.query("Why does lava from some volcanoes travel a long way?")
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["bread"]
    # Source documents, as LlamaIndex's doc_ids.
    query = VectorStoreQuery(query_embedding=embed_model.get_query_embedding("tides"), similarity_top_k=6,
                             doc_ids=["chess", "tides"])
    assert {node.ref_doc_id for node in store.query(query).nodes} == {"chess", "tides"}

    for operator in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE, FilterOperator.IS_EMPTY):
        with pytest.raises(embedapt.Error) as unsupported:
            topics(where(MetadataFilter(key="topic", value="be", operator=operator)))
        assert unsupported.value.code == embedapt.Code.NOT_SUPPORTED
        assert operator.value in unsupported.value.message and "topic" in unsupported.value.message
    with pytest.raises(embedapt.Error) as not_a_number:  # embedapt compares numbers only with > >= < <=
        topics(where(MetadataFilter(key="topic", value="m", operator=FilterOperator.GT)))
    assert not_a_number.value.code == embedapt.Code.INVALID_ARGUMENT and "$gt" in not_a_number.value.message
    store.close()


def test_delete_nodes_by_filter_and_clear(tmp_path, embed_model):
    store, _ = build_index(tmp_path / "db", embed_model)
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="tags", value="nature",
                                                                       operator=FilterOperator.CONTAINS)]))
    assert {node.metadata["topic"] for node in store.get_nodes()} == {"bread", "chess", "comets"}
    # An unknown id among them: nothing removed (the ids before it were).
    kept = [node.node_id for node in store.get_nodes()]
    with pytest.raises(embedapt.Error) as missing:
        store.delete_nodes([kept[0], "no-such-node", kept[1]])
    assert missing.value.code == embedapt.Code.NOT_FOUND
    assert sorted(node.node_id for node in store.get_nodes()) == sorted(kept)
    store.delete_nodes(kept[:2])
    assert sorted(node.node_id for node in store.get_nodes()) == sorted(kept[2:])
    store.clear()
    assert store.client.stats()["count"] == 0
    store.close()


def test_feedback_then_retrain_changes_what_llama_index_retrieves(tmp_path):
    """A task the base model fails: each question's vector is its answer's,
    rotated. Feedback through the vector store logs question -> node; the
    adapter retrained from that log undoes the rotation."""
    rng = np.random.default_rng(11)
    dim, n_docs = 32, 120
    docs = rng.standard_normal((n_docs, dim)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    def question(i):
        return (rotation @ docs[i] + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    store = EmbedaptVectorStore.open(str(tmp_path / "db"), dim=dim)
    store.add([TextNode(id_=f"n{i}", text=f"chunk {i}", embedding=docs[i].tolist()) for i in range(n_docs)])
    for round_ in range(3):
        for i in range(n_docs):
            store.feedback(question(i).tolist(), f"n{i}")
    assert store.client.stats()["logged_hits"] == 3 * n_docs

    held_out = [question(i) for i in range(n_docs)]
    def top5():
        return [[n.node_id for n in store.query(VectorStoreQuery(query_embedding=q.tolist(),
                                                                 similarity_top_k=5)).nodes]
                for q in held_out]
    def hits(rankings):
        return sum(f"n{i}" in ids for i, ids in enumerate(rankings))
    before = top5()

    report = store.client.retrain(kind="linear", activate="always")
    assert report.decision == "activated" and store.client.stats()["active_adapter"] == report.version
    after = top5()
    assert after != before
    # Far above the 5 hits a random ranking gets: retrain's fixed 20-epoch schedule undoes part of the rotation (1 -> 24).
    assert hits(after) > hits(before) + n_docs // 10, (hits(before), hits(after))
    store.close()


def test_metadata_past_the_store_limits_stays_in_the_payload(tmp_path):
    """A node with a 70 kB text field, 300 fields or a list of 2,000 tags was
    refused outright (the store's metadata limits); what does not fit is now
    kept in the payload only, and the rest can still be filtered on."""
    store = EmbedaptVectorStore.open(str(tmp_path / "db"), dim=4)
    big = {"topic": "t", "window": "x" * 70000, "tags": ["t"] * 2000,
           **{f"f{j}": j for j in range(300)}}
    store.add([TextNode(id_="n", text="hello", embedding=[1.0, 0, 0, 0], metadata=big)])
    store.add([TextNode(id_="m", text="other", embedding=[0, 1.0, 0, 0], metadata=big,
                        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-m")})])
    node = store.get_nodes(["n"])[0]
    assert node.metadata["window"] == "x" * 70000 and len(node.metadata["tags"]) == 2000
    hits = store.client.search(np.array([1, 0, 0, 0], dtype=np.float32), k=1, filter={"topic": "t"})
    assert hits.ids == ["n"]
    assert len(hits.metadata[0]) == embedapt._core.MAX_METADATA_FIELDS
    store.delete("doc-m")  # by ref_doc_id, which the cut kept
    assert [n.node_id for n in store.get_nodes()] == ["n"]
    store.close()
