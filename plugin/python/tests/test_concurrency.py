"""The GIL is released inside calls that search, write, embed and train.

Proof by counters, not by clocks: with the interpreter's switch interval set
long, a Python thread spinning on a counter can run while another thread is
inside a call only if that call released the GIL. Then the brief's scenario,
two threads searching while a third upserts, is run against the same work done
serially and both times are reported (a shared machine makes a timed assertion
meaningless; overlap is what is asserted).
"""

import sys
import threading
import time

import numpy as np
import pytest

import embedapt
from conftest import log_rotated_feedback, random_vectors

DIM = 256


@pytest.fixture
def store(tmp_path):
    with embedapt.Store.open(str(tmp_path / "db"), dim=DIM, metric="ip") as s:
        s.upsert_batch([f"d{i}" for i in range(20000)], random_vectors(20000, DIM))
        yield s


def progress_during(call) -> int:
    """How far a spinning Python thread counted while `call()` ran."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    old = sys.getswitchinterval()
    spinner = threading.Thread(target=spin)
    spinner.start()
    time.sleep(0.01)  # the spinner holds the GIL now and then, never for long
    sys.setswitchinterval(0.5)  # from here a thread keeps the GIL unless it lets go
    try:
        before = count[0]
        call()
        after = count[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        spinner.join()
    return after - before


def test_search_upsert_and_embed_release_the_gil(store, cache_dir):
    queries = random_vectors(400, DIM, seed=1)
    assert progress_during(lambda: store.search_batch(queries, k=10)) > 0
    assert progress_during(lambda: [store.search(q, k=10) for q in queries[:1]] and
                           store.search_batch(queries[:200], k=10)) > 0
    assert progress_during(lambda: store.upsert_batch([f"n{i}" for i in range(3000)],
                                                      random_vectors(3000, DIM, seed=2))) > 0
    texts = [f"sentence number {i} about the release of the lock" for i in range(64)]
    model = embedapt.Embedder("default", cache_dir=cache_dir)
    assert progress_during(lambda: model.embed(texts, query=False)) > 0


def test_retrain_releases_the_gil(tmp_path):
    with embedapt.Store.open(str(tmp_path / "small"), dim=32) as small:
        log_rotated_feedback(small)
        assert progress_during(lambda: small.retrain(epochs=2, activate="never")) > 0


def test_two_searchers_and_an_upserter_overlap(store):
    queries = random_vectors(300, DIM, seed=3)
    batches = [(f"u{b}-", random_vectors(500, DIM, seed=10 + b)) for b in range(4)]
    inside = [0]  # threads inside a store call right now
    most_inside = [0]
    lock = threading.Lock()

    def enter():
        with lock:
            inside[0] += 1
            most_inside[0] = max(most_inside[0], inside[0])

    def leave():
        with lock:
            inside[0] -= 1

    def search_all():
        for start in range(0, len(queries), 50):
            enter()
            store.search_batch(queries[start:start + 50], k=10)
            leave()

    def upsert_all(tag):
        for prefix, vectors in batches:
            enter()
            store.upsert_batch([f"{tag}{prefix}{i}" for i in range(len(vectors))], vectors)
            leave()

    start = time.perf_counter()
    search_all(), search_all(), upsert_all("serial-")
    serial = time.perf_counter() - start

    threads = [threading.Thread(target=search_all), threading.Thread(target=search_all),
               threading.Thread(target=upsert_all, args=("parallel-",))]
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)  # threads take turns only where a call lets the GIL go
    start = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    parallel = time.perf_counter() - start
    print(f"serial {serial:.3f} s, two searchers + one upserter in threads {parallel:.3f} s "
          f"(ratio {parallel / serial:.2f}), at most {most_inside[0]} threads inside the store at once")
    # Every counter change happens with the GIL held, so two threads counted
    # inside at once means one was in a call that had let the GIL go.
    assert most_inside[0] >= 2
    assert store.stats()["count"] == 20000 + 2 * 2000


def test_close_waits_for_calls_in_flight(tmp_path):
    # Closing freed the store under a search running in another thread: the
    # process crashed (RocksDB's assertion, or a segfault). Now close() waits
    # for it, and every call after it raises FAILED_PRECONDITION.
    s = embedapt.Store.open(str(tmp_path / "db"), dim=16)
    s.upsert_batch([f"d{i}" for i in range(20000)], random_vectors(20000, 16))
    inside = threading.Event()
    outcomes = []

    def search_until_closed():
        query = random_vectors(64, 16, seed=1)
        try:
            while True:
                inside.set()
                outcomes.append(len(s.search_batch(query, k=1000)))
        except embedapt.Error as e:
            outcomes.append(e.code)

    searcher = threading.Thread(target=search_until_closed)
    searcher.start()
    inside.wait()
    time.sleep(0.05)
    s.close()
    searcher.join()
    assert outcomes[-1] == embedapt.Code.FAILED_PRECONDITION
    assert all(n == 64 for n in outcomes[:-1])
    with embedapt.Store.open(str(tmp_path / "db")) as reopened:  # close() let the store go
        assert reopened.stats()["count"] == 20000
