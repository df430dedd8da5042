"""CPU work for the process pool: a plain function, importable without the app."""

from __future__ import annotations

import hashlib
import time

__all__ = ["burn_cpu"]


def burn_cpu(cpu_ms: int, seed: bytes) -> str:
    """Hash ``seed`` over and over for ``cpu_ms`` of CPU time; return the final digest.

    Pure-Python CPU work holds the GIL, so it runs in a separate process:
    in a thread it would still starve the event loop.
    """
    digest = hashlib.sha256(seed).digest()
    deadline = time.process_time() + cpu_ms / 1000
    while time.process_time() < deadline:
        for _ in range(200):
            digest = hashlib.sha256(digest).digest()
    return digest.hex()
