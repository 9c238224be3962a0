"""A comparable snapshot of every core read model (positions excluded: they
depend on arrival order, the read models must not)."""

from __future__ import annotations

from typing import Any

from django.db import connection

SNAPSHOT_QUERIES = {
    "users": "SELECT user_id, account_type, parent_user_id, referral_code, registered_at, event_id"
    " FROM ledger_exchangeuser ORDER BY user_id",
    "wallets": "SELECT user_id, asset, occurred_at, event_id, available, locked_in_orders,"
    " margin_used, bonus FROM ledger_futureswalletstate ORDER BY event_id",
    "positions": "SELECT user_id, occurred_at, event_id, positions::text"
    " FROM ledger_futurespositionsstate ORDER BY event_id",
    "holdings": "SELECT user_id, asset, occurred_at, event_id, amount FROM ledger_holdingstate"
    " ORDER BY event_id",
    "closed_orders": "SELECT user_id, order_id, first_close_at, first_close_event_id,"
    " last_close_at, realized_pnl, closing_notional, closing_fills, market, symbol, origin,"
    " promo_funding::text FROM ledger_closedorder ORDER BY user_id, order_id",
}


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        result = {}
        for name, sql in SNAPSHOT_QUERIES.items():
            cursor.execute(sql)
            result[name] = cursor.fetchall()
        return result
