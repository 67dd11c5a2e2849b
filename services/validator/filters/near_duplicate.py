"""Near duplicates: MinHash signatures of the normalised input's byte shingles, indexed in a
datasketch MinHashLSH; a row whose estimated Jaccard similarity to an already kept row (or a
seed) reaches the threshold is dropped, so one representative of each cluster stays — the first
in file order.

Signatures are computed for a whole batch at once with numpy (multiply-shift hashing of each
shingle, then a per-row minimum), because building a datasketch MinHash per row hashes every
shingle with sha1 in Python and would dominate the run time. The signatures are plain uint32
MinHash values; datasketch's LSH (banding, with its optimal band/row split for the threshold)
indexes them through LeanMinHash."""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from services.validator.config import NearDuplicateConfig
from services.validator.row import Row

_SEED = 1
_PERM_CHUNK = 16  # permutations hashed at a time: bounds the temporary arrays


class MinHasher:
    def __init__(self, num_perm: int, shingle_size: int, seed: int = _SEED) -> None:
        rng = np.random.RandomState(seed)
        # Multiply-shift hashing: ((a * x + b) mod 2^64) >> 32 with odd a is a universal family.
        self.a = (rng.randint(0, 2**62, num_perm, dtype=np.int64).astype(np.uint64) << np.uint64(1)) | np.uint64(1)
        self.b = rng.randint(0, 2**62, num_perm, dtype=np.int64).astype(np.uint64)
        self.num_perm = num_perm
        self.k = shingle_size

    def shingle_values(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every k-byte shingle of every text as one uint64, and each text's first index."""
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
        return values, firsts

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), num_perm) uint32 MinHash signatures."""
        values, firsts = self.shingle_values(texts)
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for lo in range(0, self.num_perm, _PERM_CHUNK):
                a = self.a[lo:lo + _PERM_CHUNK]
                b = self.b[lo:lo + _PERM_CHUNK]
                hashed = (values[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
                out[:, lo:lo + _PERM_CHUNK] = np.minimum.reduceat(hashed, firsts, axis=0)
        return out


class NearDuplicateFilter:
    reason = "near_duplicate"

    def __init__(self, config: NearDuplicateConfig, seed_keys: list[str]) -> None:
        self.config = config
        self.hasher = MinHasher(config.num_perm, config.shingle_size)
        self.lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        # Signatures of the kept rows, to confirm an LSH candidate with the estimated Jaccard.
        self.kept: list[np.ndarray] = []
        self.where: list[str] = []
        if config.against_seeds and seed_keys:
            for index, signature in enumerate(self.hasher.signatures(seed_keys), start=1):
                self._keep(signature, f"seed {index}")

    def _keep(self, signature: np.ndarray, where: str) -> None:
        self.lsh.insert(len(self.kept), LeanMinHash(seed=_SEED, hashvalues=signature, scheme="affine32"),
                        check_duplication=False)
        self.kept.append(signature)
        self.where.append(where)

    def apply(self, rows: list[Row]) -> None:
        if not rows:
            return
        signatures = self.hasher.signatures([row.key for row in rows])
        for row, signature in zip(rows, signatures):
            candidates = self.lsh.query(LeanMinHash(seed=_SEED, hashvalues=signature, scheme="affine32"))
            best, best_sim = -1, -1.0
            for candidate in sorted(candidates):  # sorted: ties resolve the same way every run
                sim = float(np.mean(self.kept[candidate] == signature))
                if sim > best_sim:
                    best, best_sim = candidate, sim
            if best >= 0 and best_sim >= self.config.threshold:
                row.reject(self.reason, f"input is a near duplicate of {self.where[best]} "
                           f"(estimated Jaccard {best_sim:.2f} >= {self.config.threshold})")
            else:
                self._keep(signature, f"line {row.line}")

    def notes(self) -> list[str]:
        return []
