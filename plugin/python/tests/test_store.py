"""The Store binding: round trips, search against the CLI, adapters, errors."""

import json
import subprocess

import numpy as np
import pytest

import embedapt
from conftest import random_vectors


def test_round_trip_vectors_and_payloads_across_reopen(tmp_path):
    path = str(tmp_path / "db")
    vectors = random_vectors(50, 16)
    ids = [f"doc{i}" for i in range(50)]
    payloads = [json.dumps({"n": i, "text": f"é {i}"}).encode() for i in range(50)]
    with embedapt.Store.open(path, dim=16, metric="l2", index="Flat") as store:
        store.upsert_batch(ids[:40], vectors[:40], payloads[:40])
        for i in range(40, 50):
            store.upsert(ids[i], vectors[i], payloads[i])
        store.remove("doc3")
        store.upsert("doc4", vectors[0], b"replaced")
        store.flush()
    with embedapt.Store.open(path) as store:  # dim and metric as stored
        stats = store.stats()
        assert (stats["count"], stats["dim"], stats["metric"], stats["index"]) == (49, 16, "l2", "Flat")
        for i in (0, 17, 45):
            vector, payload = store.get(ids[i])
            assert vector.dtype == np.float32 and np.array_equal(vector, vectors[i])
            assert json.loads(payload) == {"n": i, "text": f"é {i}"}
        assert store.get("doc4")[1] == b"replaced"
        assert dict(store.records())["doc7"] == payloads[7]
        with pytest.raises(embedapt.Error) as missing:
            store.get("doc3")
        assert missing.value.code == embedapt.Code.NOT_FOUND
        store.verify()
        hits = store.search(vectors[17], k=3)
        assert hits.ids[0] == "doc17" and hits.scores[0] == pytest.approx(0.0, abs=1e-4)
        assert hits.payloads[0] == payloads[17]


def test_search_equals_the_cli(tmp_path, run_cli):
    path = str(tmp_path / "db")
    vectors = random_vectors(300, 32, seed=1)
    queries = random_vectors(20, 32, seed=2)
    with embedapt.Store.open(path, dim=32, metric="cosine", index="HNSW16") as store:
        store.upsert_batch([f"d{i}" for i in range(300)], vectors)
        ours = store.search_batch(queries, k=7)
        single = store.search(queries[3], k=7)
    np.save(tmp_path / "q.npy", queries)
    run_cli("search", path, "--npy", tmp_path / "q.npy", "-k", 7, "--json", tmp_path / "out.json")
    theirs = json.loads((tmp_path / "out.json").read_text())["results"]
    assert len(ours) == len(theirs) == 20
    for mine, cli_result in zip(ours, theirs):
        assert mine.ids == cli_result["ids"]
        np.testing.assert_allclose(mine.scores, cli_result["scores"], rtol=1e-6, atol=1e-6)
    assert single.ids == ours[3].ids


def test_errors_carry_the_status_code_and_message(tmp_path):
    path = str(tmp_path / "db")
    with pytest.raises(embedapt.Error) as bad_metric:
        embedapt.Store.open(path, dim=4, metric="manhattan")
    assert bad_metric.value.code == embedapt.Code.INVALID_ARGUMENT
    assert "manhattan" in bad_metric.value.message
    with pytest.raises(embedapt.Error) as absent:
        embedapt.Store.open(str(tmp_path / "absent"), create_if_missing=False)
    assert absent.value.code == embedapt.Code.NOT_FOUND
    store = embedapt.Store.open(path, dim=4)
    with pytest.raises(embedapt.Error) as wrong_dim:
        store.upsert("a", np.ones(5, dtype=np.float32))
    assert wrong_dim.value.code == embedapt.Code.INVALID_ARGUMENT
    assert str(wrong_dim.value).startswith("InvalidArgument: ")
    with pytest.raises(embedapt.Error) as nan:
        store.upsert("a", np.array([1, np.nan, 0, 0], dtype=np.float32))
    assert nan.value.code == embedapt.Code.INVALID_ARGUMENT
    with pytest.raises(embedapt.Error) as busy:  # one handle per store
        embedapt.Store.open(path)
    assert busy.value.code == embedapt.Code.BUSY
    with pytest.raises(embedapt.Error) as no_version:
        store.activate(7)
    assert no_version.value.code == embedapt.Code.NOT_FOUND
    store.close()
    with pytest.raises(embedapt.Error) as closed:
        store.search(np.ones(4, dtype=np.float32))
    assert closed.value.code == embedapt.Code.FAILED_PRECONDITION
    embedapt.Store.open(path).close()  # closing released the lock


def test_float64_and_strided_input_are_converted(tmp_path):
    with embedapt.Store.open(str(tmp_path / "db"), dim=8) as store:
        wide = random_vectors(10, 16).astype(np.float64)[:, ::2]  # not float32, not contiguous
        store.upsert_batch([str(i) for i in range(10)], wide)
        assert np.allclose(store.get("4")[0], wide[4])
        assert store.search(wide[4], k=1).ids == ["4"]
