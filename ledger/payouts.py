"""The payout outbox seen from the wallet service: acknowledgements and the
relay that publishes instructions to the payout Redis Stream."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from config import clock
from ledger.models import PayoutInstruction
from ledger.money import format_amount

RELAY_BATCH = 1000


def payout_message(payout: PayoutInstruction) -> dict[str, Any]:
    """The instruction as the wallet service receives it (REST and stream alike)."""
    return {
        "id": payout.pk,
        "idempotency_key": payout.idempotency_key,
        "user_id": payout.user_id,
        "account": payout.account_kind,
        "asset": payout.asset,
        "amount": format_amount(payout.amount),
        "kind": payout.kind,
        "expires_at": payout.expires_at.isoformat() if payout.expires_at else None,
        "created_at": payout.created_at.isoformat(),
        "transaction_id": payout.transaction_id,
        "cause": payout.transaction.cause if hasattr(payout, "transaction") else None,
    }


def acknowledge_payout(*, payout_id: int, by: str) -> PayoutInstruction:
    """Record that the wallet service applied an instruction. Idempotent: a
    second acknowledgement changes nothing and answers the first one's time."""
    PayoutInstruction.objects.filter(pk=payout_id, acked_at__isnull=True).update(
        acked_at=clock.now(), acked_by=by[:100]
    )
    return PayoutInstruction.objects.select_related("transaction").get(pk=payout_id)


def redis_client() -> redis.Redis:
    # A Redis that hangs fails the relay in seconds (the job is retried and
    # publishes what is left), rather than holding the job's lock forever.
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=30)


def publish_payouts(*, at: dt.datetime, client: redis.Redis | None = None) -> dict[str, int]:
    """Relay unpublished instructions to the payout stream, oldest first.

    At-least-once: an instruction is marked published only after XADD
    succeeded, and a crash in between publishes it again; the wallet service
    applies each ``idempotency_key`` once. ``at`` is the relay's instant, for
    the record only: what is due is simply everything not yet published.
    """
    client = client or redis_client()
    published = 0
    while True:
        with transaction.atomic():
            batch = list(
                PayoutInstruction.objects.select_for_update(skip_locked=True)
                .select_related("transaction")
                .filter(published_at__isnull=True)
                .order_by("id")[:RELAY_BATCH]
            )
            if not batch:
                break
            pipe = client.pipeline(transaction=False)
            for payout in batch:
                pipe.xadd(
                    settings.PAYOUT_STREAM,
                    {"payout": json.dumps(payout_message(payout), default=str)},
                )
            pipe.execute()
            PayoutInstruction.objects.filter(pk__in=[p.pk for p in batch]).update(
                published_at=clock.now()
            )
            published += len(batch)
    return {"published": published}
