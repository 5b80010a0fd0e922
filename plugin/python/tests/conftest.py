"""Shared fixtures: the repository's CLI (to compare with), the real default
model, and fresh store directories."""

import json
import os
import pathlib
import struct
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The `embedapt` binary of the build `make test` made ($EMBEDAPT_CLI overrides)."""
    path = pathlib.Path(os.environ.get("EMBEDAPT_CLI", REPO / "build" / "bin" / "embedapt"))
    if not path.exists():
        pytest.fail(f"{path}: no embedapt CLI (build the project, or set EMBEDAPT_CLI)")
    return path


@pytest.fixture
def run_cli(cli):
    def run(*args: str) -> str:
        done = subprocess.run([str(cli), *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, f"embedapt {' '.join(map(str, args))}: {done.stderr}"
        return done.stdout
    return run


@pytest.fixture
def cache_dir(tmp_path) -> str:
    """An embedding cache of the test's own, so tests do not share state."""
    return str(tmp_path / "cache")


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def log_rotated_feedback(store, n_docs: int = 120, dim: int = 32, rounds: int = 2, seed: int = 11):
    """Documents, and logged questions the base model answers badly: each
    question is its answer's vector rotated (plus noise), its hit the answer."""
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((n_docs, dim)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    store.upsert_batch([f"d{i}" for i in range(n_docs)], docs)
    for _ in range(rounds):
        for i in range(n_docs):
            question = (rotation @ docs[i] + 0.1 * rng.standard_normal(dim)).astype(np.float32)
            store.log_hit(store.log_query(question, [f"d{i}"]), f"d{i}")


def write_linear_adapter(directory, matrix: np.ndarray, embedder_identity: str, side: str = "query") -> None:
    """An exported linear adapter (config.json + adapter.safetensors) holding `matrix`."""
    directory.mkdir(parents=True, exist_ok=True)
    dim = matrix.shape[0]
    config = {"kind": "linear", "in_dim": dim, "out_dim": dim, "side": side, "embedder": embedder_identity}
    (directory / "config.json").write_text(json.dumps(config))
    data = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
    header = json.dumps({"linear.weight": {"dtype": "F32", "shape": [dim, dim],
                                           "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    (directory / "adapter.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
