"""How replay rebuilds the ledger's own inputs (replay.registry): settings
rows and admin actions are appended as recorded (the rows written back),
top-ups are made again; and the tables of money it compares."""

from __future__ import annotations

from decimal import Decimal

from django.apps import apps

from ledger import config_log
from ledger.bookkeeping import fund_account, open_funding_account
from replay import registry
from replay.rebuild import align_ids
from replay.registry import RecordedEvent


def _saved(batch: list[RecordedEvent]) -> None:
    for event in batch:
        config_log.apply_row(event.data)


def _deleted(batch: list[RecordedEvent]) -> None:
    for event in batch:
        config_log.apply_deletion(event.data)


def _fund(batch: list[RecordedEvent]) -> None:
    for event in batch:
        data = event.data
        asset = data["asset"]
        program = data["account"].removeprefix("funding:").removesuffix(f":{asset}")
        align_ids("ledger_ledgertransaction", int(data["transaction_id"]))
        fund_account(
            account=open_funding_account(program=program, asset=asset),
            amount=Decimal(data["amount"]),
            idempotency_key=event.event_id.removeprefix("ledger.account_funded:"),
            by=data["by"],
            note=data["note"],
        )


registry.record(config_log.CONFIG_SAVED, _saved)
registry.record(config_log.CONFIG_DELETED, _deleted)
registry.record("ops.admin_action")
registry.action("ledger.account_funded", _fund)

registry.compared(
    "ledger: accounts",
    "SELECT code, kind, asset, program, user_id, user_kind, balance FROM ledger_account"
    ' ORDER BY code COLLATE "C"',
)
registry.compared(
    "ledger: transactions",
    "SELECT idempotency_key, kind, posted_at, cause::text, memo FROM ledger_ledgertransaction"
    ' ORDER BY idempotency_key COLLATE "C"',
)
registry.compared(
    "ledger: postings",
    "SELECT t.idempotency_key, a.code, p.amount, p.asset, p.posted_at FROM ledger_posting p"
    " JOIN ledger_ledgertransaction t ON t.id = p.transaction_id"
    " JOIN ledger_account a ON a.id = p.account_id"
    ' ORDER BY t.idempotency_key COLLATE "C", a.code COLLATE "C", p.amount',
    key_columns=3,
)
registry.compared(
    "ledger: payout instructions",
    "SELECT i.idempotency_key, t.idempotency_key, i.user_id, i.account_kind, i.asset, i.amount,"
    " i.kind, i.expires_at, i.created_at FROM ledger_payoutinstruction i"
    " JOIN ledger_ledgertransaction t ON t.id = i.transaction_id"
    ' ORDER BY i.idempotency_key COLLATE "C"',
)
registry.compared(
    "ledger: paid items",
    # Items are rows of the programs' tables, compared there; here what each
    # credit paid for: how many items of which payer, and their sum.
    "SELECT t.idempotency_key, i.payer, i.user_id, count(*), sum(i.amount)"
    " FROM ledger_paiditem i JOIN ledger_ledgertransaction t ON t.id = i.transaction_id"
    " GROUP BY 1, 2, 3"
    ' ORDER BY t.idempotency_key COLLATE "C", i.payer COLLATE "C", i.user_id COLLATE "C"',
    key_columns=3,
)
registry.compared(
    "ledger: payout digests",
    # What each payout paid, as one hash over its credits (ledger.digests):
    # equal digests are equal credits, key by key.
    "SELECT funding_account, recorded_at, payers, digest, asset, credits, items, total,"
    ' cause::text FROM ledger_payoutdigest ORDER BY funding_account COLLATE "C", recorded_at,'
    ' payers COLLATE "C"',
    key_columns=3,
)
registry.compared(
    "log: the product's events",
    "SELECT event_id, type, occurred_at, user_id, body_hash, source, data::text"
    " FROM ledger_event WHERE origin = 'rewards' ORDER BY event_id COLLATE \"C\"",
)
registry.compared(
    "log: the exchange's facts",
    "SELECT event_id, body_hash, type, occurred_at, received_at, user_id, source"
    " FROM ledger_event WHERE origin = 'exchange' ORDER BY event_id COLLATE \"C\"",
)


def _compare_settings() -> None:
    """Every settings row as replay rebuilt it from its ``config.saved`` events:
    a row written around the log (raw SQL, a form without the signal) differs."""
    for label, runtime in config_log.recorded_models().items():
        meta = apps.get_model(label)._meta
        columns = [f.column for f in meta.concrete_fields if f.name in runtime]
        dropped = "".join(f" - '{column}'" for column in columns)
        registry.compared(
            f"settings: {label}",
            f"SELECT id, (to_jsonb(t){dropped})::text FROM {meta.db_table} t ORDER BY id",  # noqa: S608
        )


_compare_settings()
