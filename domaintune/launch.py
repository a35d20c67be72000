"""Start N local training processes for DDP (what torchrun does, without its error wrapping).

Hand-written instead of torchrun: torchrun turns a child's one-line user error into pages of
``ChildFailedError`` traceback; here each child's stderr passes through unchanged and the first
failing child's exit code is returned.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    """A free TCP port on loopback for the process group's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(argv: list[str], processes: int, threads: int | None = None) -> int:
    """Run ``python -m domaintune.cli *argv`` in ``processes`` ranks; return the exit code."""
    port = free_port()
    threads = threads or max(1, (os.cpu_count() or 1) // processes)
    children = []
    for rank in range(processes):
        env = dict(os.environ)
        env.update(
            {
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "WORLD_SIZE": str(processes),
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "LOCAL_WORLD_SIZE": str(processes),
                "OMP_NUM_THREADS": str(threads),
            }
        )
        children.append(subprocess.Popen([sys.executable, "-m", "domaintune.cli", *argv], env=env))
    code = 0
    try:
        while children:
            for child in list(children):
                status = child.poll()
                if status is None:
                    continue
                children.remove(child)
                if status != 0 and code == 0:
                    code = status
                    for other in children:
                        other.terminate()
            time.sleep(0.2)
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        return 130
    return code
