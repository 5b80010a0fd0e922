"""The Store binding: round trips, search against the CLI, adapters, errors."""

import json
import shutil

import numpy as np
import pytest

import embedapt
from conftest import log_rotated_feedback, random_vectors


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
            vector, payload, metadata = store.get(ids[i])
            assert vector.dtype == np.float32 and np.array_equal(vector, vectors[i])
            assert json.loads(payload) == {"n": i, "text": f"é {i}"} and metadata == {}
        assert store.get("doc4")[1] == b"replaced"
        assert {id: (payload, meta) for id, payload, meta in store.records()}["doc7"] == (payloads[7], {})
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
    with pytest.raises(embedapt.Error) as ids_and_rows:
        store.upsert_batch(["a", "b"], np.ones((3, 4), dtype=np.float32))
    assert ids_and_rows.value.code == embedapt.Code.INVALID_ARGUMENT and "2 ids" in ids_and_rows.value.message
    with pytest.raises(embedapt.Error) as one_query:
        store.search_batch(np.ones(4, dtype=np.float32))
    assert "(n, dim)" in one_query.value.message
    with pytest.raises(embedapt.Error) as nan:
        store.upsert("a", np.array([1, np.nan, 0, 0], dtype=np.float32))
    assert nan.value.code == embedapt.Code.INVALID_ARGUMENT
    with pytest.raises(embedapt.Error) as not_json:  # one line, no Python traceback in it
        store.upsert("a", np.ones(4, dtype=np.float32), metadata={"tags": {"a", "b"}})
    assert "set is not JSON serializable" in not_json.value.message and "\n" not in not_json.value.message
    with pytest.raises(embedapt.Error) as busy:  # one handle per store
        embedapt.Store.open(path)
    assert busy.value.code == embedapt.Code.BUSY
    for alias in (path + "/", str(tmp_path / "." / "db")):  # under any spelling (two writers destroyed it)
        with pytest.raises(embedapt.Error) as busy:
            embedapt.Store.open(alias)
        assert busy.value.code == embedapt.Code.BUSY
    # An id of bytes that are not UTF-8 is the store's to keep; it comes back
    # with U+FFFD for them (every search that found it raised UnicodeDecodeError).
    store.upsert(b"\xff\xfe", np.array([0, 0, 0, 1], dtype=np.float32))
    assert "\ufffd\ufffd" in store.search(np.array([0, 0, 0, 1], dtype=np.float32), k=1).ids
    assert "\ufffd\ufffd" in [record[0] for record in store.records()]
    store.remove(b"\xff\xfe")
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
        assert store.search(list(map(float, wide[4])), k=1).ids == ["4"]  # a list of numbers too


def test_vectors_that_are_not_real_numbers_are_refused(tmp_path):
    # Complex input lost its imaginary part with only a warning: (1+2j, 0, ...)
    # was stored as (1, 0, ...).
    with embedapt.Store.open(str(tmp_path / "db"), dim=4) as store:
        for bad in (np.array([1 + 2j, 0, 0, 0]), np.array([True, False, True, True]), ["a", "b", "c", "d"],
                    [[1.0, 2.0], [3.0]]):
            with pytest.raises(embedapt.Error, match="expected real numbers"):
                store.upsert("a", bad)
            with pytest.raises(embedapt.Error, match="expected real numbers"):
                store.search(bad, k=1)
        assert store.stats()["count"] == 0


def test_retrain_stores_the_adapter_bytes_the_cli_stores(tmp_path, run_cli):
    with embedapt.Store.open(str(tmp_path / "py"), dim=32) as store:
        log_rotated_feedback(store)
    shutil.copytree(tmp_path / "py", tmp_path / "cli")

    with embedapt.Store.open(str(tmp_path / "py")) as store:
        report = store.retrain(kind="linear", seed=7, activate="never")
        assert isinstance(report, embedapt.RetrainReport)
        assert (report.decision, report.version, report.previous_active) == ("stored", 1, 0)
        assert report.queries == 240 and report.pairs == 240 and report.dropped_hits == 0
        assert report.adapter.hit > report.base.hit and report.adapter.rr > report.base.rr
        low, high = report.log_rank_gain_ci95
        assert 0 < low <= report.log_rank_gain <= high and report.gain_z >= report.min_gain_z
        assert report.rr_gain >= 0
        low, high = report.hit_gain_ci95
        assert low <= report.hit_gain <= high
        assert report.epochs_run == 20 and report.train_seconds > 0
        assert store.stats()["active_adapter"] == 0  # activate="never"
        store.export_adapter(report.version, str(tmp_path / "py-adapter"))
    printed = run_cli("retrain", tmp_path / "cli", "--adapter", "linear", "--seed", 7,
                      "--out", tmp_path / "cli-adapter")
    assert report.summary in printed
    assert ((tmp_path / "py-adapter" / "adapter.safetensors").read_bytes() ==
            (tmp_path / "cli-adapter" / "adapter.safetensors").read_bytes())


def test_retrain_activates_per_policy_and_refuses_bad_options(tmp_path):
    with embedapt.Store.open(str(tmp_path / "db"), dim=32) as store:
        with pytest.raises(embedapt.Error) as empty_log:
            store.retrain()
        assert empty_log.value.code == embedapt.Code.INVALID_ARGUMENT
        log_rotated_feedback(store)
        with pytest.raises(embedapt.Error) as bad_policy:
            store.retrain(activate="sometimes")
        assert bad_policy.value.code == embedapt.Code.INVALID_ARGUMENT
        assert "sometimes" in bad_policy.value.message
        with pytest.raises(embedapt.Error) as script:
            store.retrain(kind="torchscript", torchscript_archive=b"not a module")
        assert script.value.code == embedapt.Code.FAILED_PRECONDITION
        assert store.stats()["adapter_versions"] == 0  # refused calls stored nothing

        first = store.retrain()  # the default policy: activate if better
        assert (first.decision, store.stats()["active_adapter"]) == ("activated", first.version)
        # if-better scores the active version too, on the same logged queries.
        second = store.retrain(seed=8)
        assert second.previous_active == first.version and second.incumbent.hit > second.base.hit
        better = second.adapter.rr > second.incumbent.rr
        assert second.decision == ("activated" if better else "not-better")
        third = store.retrain(seed=9, activate="always")
        assert third.decision == "activated"
        assert store.stats()["active_adapter"] == third.version == 3


def test_metadata_round_trip_and_remove_matching(tmp_path):
    path = str(tmp_path / "db")
    vectors = random_vectors(6, 8)
    metadata = [{"lang": "da", "year": 2021, "score": 0.5, "draft": False, "tags": ["a", "b"]},
                {"lang": "sv", "year": 2019}, None, {}, {"lang": "da", "name": "é ☾"}]
    with embedapt.Store.open(path, dim=8) as store:
        store.upsert_batch([f"r{i}" for i in range(5)], vectors[:5], [b"p"] * 5, metadata)
        store.upsert("r5", vectors[5], b"q", metadata={"lang": "de"})
        with pytest.raises(embedapt.Error) as nested:
            store.upsert("bad", vectors[0], metadata={"lang": {"code": "da"}})
        assert nested.value.code == embedapt.Code.INVALID_ARGUMENT and "lang" in nested.value.message
        with pytest.raises(embedapt.Error) as nan:
            store.upsert("bad", vectors[0], metadata={"x": float("nan")})
        assert nan.value.code == embedapt.Code.INVALID_ARGUMENT and "bad" in nan.value.message
        with pytest.raises(embedapt.Error):  # all or nothing: one bad record, none written
            store.upsert_batch(["ok", "bad"], vectors[:2], metadata=[{"a": "b"}, {"$x": 1}])
    with embedapt.Store.open(path) as store:
        assert store.stats()["count"] == 6
        for i, expected in enumerate(metadata):
            assert store.get(f"r{i}")[2] == (expected or {})
        assert store.get("r5")[1:] == (b"q", {"lang": "de"})
        assert [m for _, _, m in store.records()] == [m or {} for m in metadata] + [{"lang": "de"}]
        hits = store.search(vectors[0], k=1)
        assert hits.ids == ["r0"] and hits.metadata == [metadata[0]]
        store.upsert("r0", vectors[0])  # an upsert replaces the record whole, metadata too
        assert store.get("r0")[2] == {}
        assert store.remove_matching({"lang": "da"}) == 1  # r4 (r0 has none any more)
        assert store.remove_matching({"year": {"$lt": 2000}}) == 0
        assert sorted(id for id, _, _ in store.records()) == ["r0", "r1", "r2", "r3", "r5"]
        with pytest.raises(embedapt.Error) as bad_filter:
            store.remove_matching({"year": {"$near": 2020}})
        assert bad_filter.value.code == embedapt.Code.INVALID_ARGUMENT and "$near" in bad_filter.value.message
        store.verify()


def test_filtered_search_equals_the_cli(tmp_path, run_cli):
    path = str(tmp_path / "db")
    n = 400
    vectors, queries = random_vectors(n, 24, seed=4), random_vectors(12, 24, seed=5)
    colors = ["red", "green", "blue"]
    metadata = [{"tenant": ["acme", "globex"][i % 2], "year": 2000 + i % 30, "lang": ["da", "sv", "de", "en"][i % 4],
                 "tags": [colors[i % 3], colors[(i // 3) % 3]]} for i in range(n)]
    where = {"tenant": "acme", "year": {"$gte": 2015},
             "$or": [{"tags": {"$contains": "red"}}, {"lang": {"$in": ["da", "sv"]}}]}
    def matches(m):
        return (m["tenant"] == "acme" and m["year"] >= 2015 and
                ("red" in m["tags"] or m["lang"] in ("da", "sv")))
    n_matching = sum(map(matches, metadata))
    with embedapt.Store.open(path, dim=24, index="HNSW16") as store:
        store.upsert_batch([f"d{i}" for i in range(n)], vectors, metadata=metadata)
        ours = store.search_batch(queries, k=100, filter=where)
        single = store.search(queries[0], k=100, filter=where)
        with pytest.raises(embedapt.Error) as bad:
            store.search(queries[0], filter={"year": {"$gte": "2015"}})
        assert bad.value.code == embedapt.Code.INVALID_ARGUMENT and "$gte" in bad.value.message
    assert 0 < n_matching < 100
    for result in ours:
        assert len(result) == n_matching  # min(k, matches), inside the HNSW search
        assert all(matches(m) for m in result.metadata)
    assert single.ids == ours[0].ids

    np.save(tmp_path / "q.npy", queries)
    run_cli("search", path, "--npy", tmp_path / "q.npy", "-k", 100, "--filter", json.dumps(where),
            "--json", tmp_path / "out.json")
    theirs = json.loads((tmp_path / "out.json").read_text())["results"]
    for mine, cli_result in zip(ours, theirs, strict=True):
        assert mine.ids == cli_result["ids"] and mine.metadata == cli_result["metadata"]
        np.testing.assert_allclose(mine.scores, cli_result["scores"], rtol=1e-6, atol=1e-6)


def test_search_knobs_and_ids_only_equal_the_cli(tmp_path, run_cli):
    path = str(tmp_path / "db")
    n = 2000
    vectors, queries = random_vectors(n, 16, seed=6), random_vectors(10, 16, seed=7)
    with embedapt.Store.open(path, dim=16, index="IVF32,Flat") as store:
        store.upsert_batch([f"d{i}" for i in range(n)], vectors, [b"p"] * n,
                           metadata=[{"even": i % 2 == 0} for i in range(n)])
        full = store.search_batch(queries, k=5, nprobe=32)
        ids = store.search_batch(queries, k=5, nprobe=32, ids_only=True)
        single = store.search(queries[2], k=5, nprobe=32, ids_only=True)
        one_list = store.search_batch(queries, k=5)
        for knob, value, says in (("nprobe", 33, "nprobe: must be in 1..32"),
                                  ("ef_search", 16, "ef_search: applies to HNSW indexes")):
            with pytest.raises(embedapt.Error) as bad:
                store.search(queries[0], k=5, **{knob: value})
            assert bad.value.code == embedapt.Code.INVALID_ARGUMENT and says in bad.value.message
    for mine, bare in zip(full, ids, strict=True):
        assert mine.ids == bare.ids and np.array_equal(mine.scores, bare.scores)
        assert mine.payloads == [b"p"] * 5 and bare.payloads == [b""] * 5
        assert len(mine.metadata) == 5 and bare.metadata == [{}] * 5
    assert single.ids == full[2].ids
    assert any(a.ids != b.ids for a, b in zip(full, one_list))  # the knob reached the index

    np.save(tmp_path / "q.npy", queries)
    run_cli("search", path, "--npy", tmp_path / "q.npy", "-k", 5, "--nprobe", 32, "--json", tmp_path / "out.json")
    theirs = json.loads((tmp_path / "out.json").read_text())["results"]
    assert [r["ids"] for r in theirs] == [r.ids for r in full]
