"""Runs Milvus's embedded server (the `milvus` PyPI package) for tests and scripts.

usage: serve.py BASE_DIR PORT_FILE

Keeps the server's binaries under BASE_DIR (unpacked once) and its data under
BASE_DIR/data (emptied at every start), picks a free port, and writes it to
PORT_FILE once the server answers, so a waiting caller knows it is ready.
Runs until SIGTERM or SIGINT, or until its parent process dies (Linux), and
then stops the server: a test that fails or crashes leaves nothing running.
"""
import ctypes
import os
import shutil
import signal
import socket
import sys
import time

from milvus import default_server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    base, port_file = sys.argv[1], sys.argv[2]
    # The parent's death reaches us as SIGTERM, handled like any other stop.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    if os.getppid() == 1:
        return  # the parent died before the death signal was armed
    for name in ("data", "logs"):
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    default_server.set_base_dir(base)
    default_server.listen_port = free_port()
    try:
        started = time.monotonic()
        default_server.start()
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{default_server.listen_port}\n")
        os.replace(tmp, port_file)
        print(f"milvus ready on 127.0.0.1:{default_server.listen_port} after "
              f"{time.monotonic() - started:.1f} s (pid {default_server.server_proc.pid})", flush=True)
        while not stop and default_server.server_proc.poll() is None:
            time.sleep(0.2)
    finally:
        default_server.stop()


if __name__ == "__main__":
    main()
