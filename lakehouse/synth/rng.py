"""Random streams keyed by name, so every piece of the world draws from its own reproducible stream.

A stream is derived from (seed, name, numbers...) only. Drawing more or fewer numbers in one stream never
shifts another, which is why a month simulated alone gives the same rows as that month inside a longer run.
``hash_uniform`` gives stateless per-row uniforms for choices that must not depend on how rows are batched
(which rows of an export file get a dirty copy).
"""

from __future__ import annotations

import zlib

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def stream(seed: int, name: str, *numbers: int) -> np.random.Generator:
    """A generator for (seed, name, numbers); numbers may be negative (they are folded to 32 bits)."""
    entropy = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, key(name)] + [n & 0xFFFFFFFF for n in numbers]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, name: str, *arrays: np.ndarray | int) -> np.ndarray:
    """Uniform [0, 1) per element, a pure function of (seed, name, the arrays' values)."""
    with np.errstate(over="ignore"):
        h = _splitmix(np.asarray([(seed * 1_000_003 + key(name)) & 0xFFFFFFFFFFFF], dtype=np.uint64))
        for a in arrays:
            h = _splitmix(h ^ (np.asarray(a).astype(np.int64).astype(np.uint64)))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
