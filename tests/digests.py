"""A payout job's counts name the digest of each payment it made
(``digest #<id>``, ledger.digests); tests of its other figures leave them out."""

from __future__ import annotations

from typing import Any

from ledger.digests import COUNT_PREFIX


def without_digests(counts: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in counts.items() if not key.startswith(COUNT_PREFIX)}
