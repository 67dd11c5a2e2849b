"""Label balance: no label may hold more than ``max_share`` of the accepted rows. It needs the
final counts, so it runs after every other filter, as a second pass over the surviving rows:
it computes the largest per-label cap k such that, keeping the first min(count, k) rows of each
label in file order, no label exceeds the share; the rest are rejected."""

from __future__ import annotations


def auto_share(num_labels: int) -> float:
    """Twice the fair share: tolerate natural skew, stop one label drowning the others."""
    return 1.0 if num_labels <= 2 else min(1.0, 2.0 / num_labels)


def balance_cap(counts: dict[str, int], max_share: float) -> int | None:
    """The per-label cap, or None when no label needs capping."""
    total = sum(counts.values())
    if not total or max(counts.values()) <= max_share * total + 1e-9:
        return None

    def ok(k: int) -> bool:
        kept = [min(c, k) for c in counts.values()]
        return max(kept) <= max_share * sum(kept) + 1e-9

    # ok() holds on an interval [0, K]: share(k) is concave in k, so bisect for K.
    lo, hi = 0, max(counts.values())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo
