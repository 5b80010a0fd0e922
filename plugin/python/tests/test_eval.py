"""embedapt.embed and embedapt.evaluate give the CLI's numbers; the HTML
report renders in headless Chromium without the network."""

import json
import shutil
import subprocess

import numpy as np
import pytest

import embedapt
from conftest import write_linear_adapter

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "silver", "golden"]
THINGS = ["bicycle", "teapot", "lantern", "umbrella", "violin", "kite", "clock", "boat", "lamp", "scarf"]


def write_dataset(path):
    """A LlamaIndex-layout dataset: 30 documents, two questions about each."""
    corpus, queries, relevant = {}, {}, {}
    for i in range(30):
        color, thing = COLORS[i % 10], THINGS[(i * 3 + i // 10) % 10]
        doc = f"d{i}"
        corpus[doc] = f"Room {i} of the museum holds a {color} {thing} donated in {1900 + 3 * i}."
        for j, question in enumerate([f"Which room holds the {color} {thing}?",
                                      f"When was the {thing} in room {i} donated?"]):
            queries[f"q{i}-{j}"] = question
            relevant[f"q{i}-{j}"] = [doc]
    path.write_text(json.dumps({"queries": queries, "corpus": corpus, "relevant_docs": relevant,
                                "mode": "text"}))


@pytest.fixture
def evaluated_store(tmp_path, run_cli, cache_dir):
    """A store ingested by the CLI, with one adapter version: a perturbed
    identity, which changes some rankings."""
    dataset = tmp_path / "museum.json"
    write_dataset(dataset)
    db = tmp_path / "db"
    run_cli("ingest", db, "--dataset", dataset, "--embedder", "default", "--cache-dir", cache_dir)
    matrix = np.eye(384) + 0.08 * np.random.default_rng(5).standard_normal((384, 384))
    with embedapt.Store.open(str(db)) as store:
        write_linear_adapter(tmp_path / "linear", matrix, store.stats()["embedder"])
        assert store.import_adapter(str(tmp_path / "linear")) == 1
    return db, dataset


def test_embed_equals_the_cli(tmp_path, run_cli, cache_dir):
    texts = ["a bee in winter", "lava flows", "", "tides and the moon ☾"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    for query in (False, True):
        ours = embedapt.embed(texts, query=query, cache_dir=cache_dir)
        assert ours.shape == (4, 384) and ours.dtype == np.float32
        side = ["--query"] if query else []
        run_cli("embed", "--embedder", "default", "--input", tmp_path / "in.jsonl", "--out", tmp_path / "o.npy",
                "--cache-dir", tmp_path / "cli-cache", *side)
        np.testing.assert_allclose(ours, np.load(tmp_path / "o.npy"), atol=1e-5)
    with pytest.raises(TypeError):  # one string is no list of texts (each character was embedded)
        embedapt.embed("hello", cache_dir=cache_dir)


def test_evaluate_equals_embedapt_eval(tmp_path, run_cli, cache_dir, evaluated_store):
    db, dataset = evaluated_store
    run_cli("eval", db, "--dataset", dataset, "--embedder", "default", "--adapter", "1", "--top-k", 3,
            "--seed", 7, "--json", tmp_path / "cli.json", "--cache-dir", cache_dir)
    cli = json.loads((tmp_path / "cli.json").read_text())
    with embedapt.Store.open(str(db)) as store:
        ours = embedapt.evaluate(store, dataset, adapters=["1"], top_k=3, seed=7, cache_dir=cache_dir,
                                 json=tmp_path / "py.json")
    assert json.loads((tmp_path / "py.json").read_text()) == cli
    for mine, theirs in zip(ours["results"], cli["results"]):
        for key in ("name", "n_queries", "hit_rate", "mrr", "ndcg@10", "recall@10"):
            assert mine[key] == theirs[key]
        assert list(mine["hit_rate_ci95"]) == theirs["hit_rate_ci95"]
        # The curve at k = top_k is the table's number.
        assert mine["hit_at_k"][2] == pytest.approx(mine["hit_rate"])
        assert mine["mrr_at_k"][2] == pytest.approx(mine["mrr"])
        assert mine["hit_at_k"] == sorted(mine["hit_at_k"]) and len(mine["hit_at_k"]) == 20
    assert [c["p_value"] for c in ours["comparisons"]] == [c["p_value"] for c in cli["comparisons"]]


def test_evaluate_errors_carry_codes(tmp_path, evaluated_store, cache_dir):
    db, dataset = evaluated_store
    with embedapt.Store.open(str(db)) as store:
        with pytest.raises(embedapt.Error) as missing:
            embedapt.evaluate(store, tmp_path / "nope.json", cache_dir=cache_dir)
        assert missing.value.code == embedapt.Code.IO_ERROR and "nope.json" in missing.value.message
        with pytest.raises(embedapt.Error) as no_version:
            embedapt.evaluate(store, dataset, adapters=["9"], cache_dir=cache_dir)
        assert no_version.value.code == embedapt.Code.NOT_FOUND
        assert "9" in no_version.value.message


def test_embedder_timeout_bounds_each_request(tmp_path):
    # Python had no way to bound a command: or openai: request (the CLI's --timeout).
    import time
    start = time.monotonic()
    with pytest.raises(embedapt.Error) as silent:
        embedapt.Embedder("command:exec sleep 600", timeout=0.5, use_cache=False)
    assert time.monotonic() - start < 30
    assert "timed out after 0.5s" in silent.value.message
    for bad in (-1.0, float("nan"), 1e9):
        with pytest.raises(embedapt.Error, match="timeout: a timeout must be 0.001 to 86400 seconds"):
            embedapt.Embedder("command:cat", timeout=bad)


def test_html_report_renders_in_chromium(tmp_path, run_cli, cache_dir, evaluated_store):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (tools/install-deps.sh installs it)"
    db, dataset = evaluated_store
    with embedapt.Store.open(str(db)) as store:
        embedapt.evaluate(store, dataset, adapters=["1"], top_k=5, cache_dir=cache_dir, html=tmp_path / "py.html")
    run_cli("eval", db, "--dataset", dataset, "--embedder", "default", "--adapter", "1",
            "--html", tmp_path / "report.html", "--cache-dir", cache_dir)
    html = (tmp_path / "report.html").read_text()
    # One page, nothing fetched: the only URL is the SVG namespace.
    assert html.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http") == 0
    assert html.count("<svg") == 2 and html.count("<polyline") == 2 + 4  # base: 2 lines; adapter: 2 + base's 2
    assert "linear v1" in html and "paired permutation" in html
    assert (tmp_path / "py.html").read_text().count("<polyline") == 6

    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--proxy-server=127.0.0.1:9", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1100,900", (tmp_path / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    def count(rgb):
        return int((np.abs(pixels - np.array(rgb)).sum(axis=1) < 40).sum())
    # The charts were drawn: many pixels in the hit@k blue and the MRR@k red.
    assert count((0x1f, 0x77, 0xb4)) > 300
    assert count((0xd6, 0x27, 0x28)) > 300
