"""Near duplicates: MinHash signatures of the normalised input's byte shingles, banded into an
LSH index; a row whose estimated Jaccard similarity to an already kept row (or a seed) reaches
the threshold is dropped, so one representative of each cluster stays — the first in file order.

Two deliberate departures from building a datasketch MinHash per row and inserting it into a
datasketch MinHashLSH, both for speed (that path cost ~0.6 ms a row, more than every other filter
together; see benchmarks/validation.py):
- signatures are computed for a whole batch at once with numpy, with datasketch's "affine32"
  construction (premix each shingle hash to 32 bits, then ``a * h + b mod 2^32`` per permutation,
  ``a`` odd) instead of sha1 per shingle in Python;
- the banding is a dict per band over the signature's bytes; the band/row split is datasketch's
  own optimum for the threshold (MinHashLSH's false-positive/negative integration), taken from a
  MinHashLSH built with the same threshold and num_perm.
Every LSH candidate is confirmed with the signatures' estimated Jaccard before a row is dropped."""

from __future__ import annotations

import numpy as np
from datasketch import MinHashLSH

from services.validator.config import NearDuplicateConfig
from services.validator.row import Row

_SEED = 1
_PERM_CHUNK = 16  # permutations hashed at a time: bounds the temporary arrays
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 64-bit shingle → well-mixed 32 bits


class MinHasher:
    def __init__(self, num_perm: int, shingle_size: int, seed: int = _SEED) -> None:
        rng = np.random.RandomState(seed)
        self.a = rng.randint(0, 2**31, num_perm, dtype=np.int64).astype(np.uint32) * np.uint32(2) + np.uint32(1)
        self.b = rng.randint(0, 2**32, num_perm, dtype=np.int64).astype(np.uint32)
        self.num_perm = num_perm
        self.k = shingle_size

    def shingle_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """A 32-bit hash of every k-byte shingle of every text, and each text's first index."""
        k = self.k
        encoded = [t.encode("utf-8") for t in texts]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        # Each text is followed by k zero bytes so that no shingle crosses into the next text
        # and a text shorter than k still yields one (zero-padded) shingle.
        buf = np.frombuffer(b"".join(e + b"\0" * k for e in encoded), dtype=np.uint8)
        starts = np.concatenate(([0], np.cumsum(lengths + k)[:-1]))
        counts = np.maximum(1, lengths - k + 1)
        firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        positions = np.repeat(starts - firsts, counts) + np.arange(int(counts.sum()))
        values = np.zeros(len(positions), dtype=np.uint64)
        for j in range(k):
            values |= buf[positions + j].astype(np.uint64) << np.uint64(8 * j)
        with np.errstate(over="ignore"):
            hashes = ((values * _GOLDEN) >> np.uint64(32)).astype(np.uint32)
        return hashes, firsts

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32 MinHash signatures."""
        hashes, firsts = self.shingle_hashes(texts)
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for lo in range(0, self.num_perm, _PERM_CHUNK):
                permuted = hashes[:, None] * self.a[None, lo:lo + _PERM_CHUNK] + self.b[None, lo:lo + _PERM_CHUNK]
                out[:, lo:lo + _PERM_CHUNK] = np.minimum.reduceat(permuted, firsts, axis=0)
        return out


class NearDuplicateFilter:
    reason = "near_duplicate"

    def __init__(self, config: NearDuplicateConfig, seed_keys: list[str]) -> None:
        self.config = config
        self.hasher = MinHasher(config.num_perm, config.shingle_size)
        params = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        self.bands = [(i * params.r, (i + 1) * params.r) for i in range(params.b)]
        self.tables: list[dict[bytes, list[int]]] = [{} for _ in self.bands]
        # Signatures of the kept rows (confirm candidates) and where each kept row is.
        self.kept: list[np.ndarray] = []
        self.where: list[str] = []
        if config.against_seeds and seed_keys:
            for index, signature in enumerate(self.hasher.signatures(seed_keys), start=1):
                self._keep(signature, f"seed {index}")

    def _keep(self, signature: np.ndarray, where: str) -> None:
        number = len(self.kept)
        for (lo, hi), table in zip(self.bands, self.tables):
            table.setdefault(signature[lo:hi].tobytes(), []).append(number)
        self.kept.append(signature)
        self.where.append(where)

    def apply(self, rows: list[Row]) -> None:
        if not rows:
            return
        threshold = self.config.threshold
        signatures = self.hasher.signatures([row.key for row in rows])
        for row, signature in zip(rows, signatures):
            candidates: set[int] = set()
            for (lo, hi), table in zip(self.bands, self.tables):
                hit = table.get(signature[lo:hi].tobytes())
                if hit:
                    candidates.update(hit)
            best, best_sim = -1, -1.0
            for candidate in sorted(candidates):  # sorted: ties resolve the same way every run
                sim = float(np.count_nonzero(self.kept[candidate] == signature)) / self.config.num_perm
                if sim > best_sim:
                    best, best_sim = candidate, sim
            if best >= 0 and best_sim >= threshold:
                row.reject(self.reason, f"input is a near duplicate of {self.where[best]} "
                           f"(estimated Jaccard {best_sim:.2f} >= {threshold})")
            else:
                self._keep(signature, f"line {row.line}")

    def notes(self) -> list[str]:
        return []
