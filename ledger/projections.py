"""The core read models every program reads (see ``ledger.models.read_models``)."""

from __future__ import annotations

from typing import Any

from ledger.projection import Projector, register

# Inbound facts only: these read models key rows by event id, which is unique
# among inbound facts, not across the log (ledger migration 0012).
_RANGE = (
    "e.type = %(type)s AND e.origin = 'exchange'"
    " AND e.position > %(after)s AND e.position <= %(upto)s"
)


def _params(event_type: str, after: int, upto: int) -> dict[str, Any]:
    return {"type": event_type, "after": after, "upto": upto}


def _fold_user_directory(cursor: Any, after: int, upto: int) -> None:
    # The earliest registration of a user wins, whatever order facts arrive in.
    cursor.execute(
        f"""
        INSERT INTO ledger_exchangeuser
            (user_id, account_type, parent_user_id, referral_code, registered_at, event_id)
        SELECT DISTINCT ON (e.user_id)
            e.user_id, e.data->>'account_type', coalesce(e.data->>'parent_user_id', ''),
            coalesce(e.data->>'referral_code', ''), e.occurred_at, e.event_id
        FROM ledger_event e
        WHERE {_RANGE}
        ORDER BY e.user_id, e.occurred_at, e.event_id
        ON CONFLICT (user_id) DO UPDATE SET
            account_type = EXCLUDED.account_type,
            parent_user_id = EXCLUDED.parent_user_id,
            referral_code = EXCLUDED.referral_code,
            registered_at = EXCLUDED.registered_at,
            event_id = EXCLUDED.event_id
        WHERE (EXCLUDED.registered_at, EXCLUDED.event_id)
            < (ledger_exchangeuser.registered_at, ledger_exchangeuser.event_id)
        """,  # noqa: S608 - constant fragments only
        _params("user.registered", after, upto),
    )


def _fold_wallets(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        f"""
        INSERT INTO ledger_futureswalletstate
            (user_id, asset, occurred_at, event_id, available, locked_in_orders, margin_used, bonus)
        SELECT e.user_id, e.data->>'asset', e.occurred_at, e.event_id,
            (e.data->>'available')::numeric, (e.data->>'locked_in_orders')::numeric,
            (e.data->>'margin_used')::numeric, (e.data->>'bonus')::numeric
        FROM ledger_event e
        WHERE {_RANGE}
        ON CONFLICT (event_id) DO NOTHING
        """,  # noqa: S608
        _params("futures_wallet.updated", after, upto),
    )


def _fold_positions(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        f"""
        INSERT INTO ledger_futurespositionsstate (user_id, occurred_at, event_id, positions)
        SELECT e.user_id, e.occurred_at, e.event_id, e.data->'positions'
        FROM ledger_event e
        WHERE {_RANGE}
        ON CONFLICT (event_id) DO NOTHING
        """,  # noqa: S608
        _params("futures_positions.updated", after, upto),
    )


def _fold_holdings(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        f"""
        INSERT INTO ledger_holdingstate (user_id, asset, occurred_at, event_id, amount)
        SELECT e.user_id, e.data->>'asset', e.occurred_at, e.event_id,
            (e.data->>'amount')::numeric
        FROM ledger_event e
        WHERE {_RANGE}
        ON CONFLICT (event_id) DO NOTHING
        """,  # noqa: S608
        _params("holding.updated", after, upto),
    )


def _fold_closed_orders(cursor: Any, after: int, upto: int) -> None:
    # Sums are commutative and "first" is a minimum over (occurred_at, event_id),
    # so folding fills in any grouping or order gives the same closed orders.
    # One pass, no joins: a batch's statistics are unknown to the planner while
    # it is still being written, and a join plan guessed from them goes quadratic.
    cursor.execute(
        f"""
        WITH orders AS (
            SELECT e.user_id, e.data->>'order_id' AS order_id,
                sum((e.data->>'realized_pnl')::numeric) AS pnl,
                sum((e.data->>'notional')::numeric) AS notional,
                count(*) AS n,
                max(e.occurred_at) AS last_at,
                min(e.occurred_at) AS first_at,
                (array_agg(e.event_id ORDER BY e.occurred_at, e.event_id))[1] AS first_event_id,
                (array_agg(e.data->>'market' ORDER BY e.occurred_at, e.event_id))[1] AS market,
                (array_agg(e.data->>'symbol' ORDER BY e.occurred_at, e.event_id))[1] AS symbol,
                (array_agg(e.data->>'origin' ORDER BY e.occurred_at, e.event_id))[1] AS origin,
                jsonb_agg(e.data->'promo_funding') AS promos,
                max(e.position) AS last_position
            FROM ledger_event e
            WHERE {_RANGE} AND e.data->>'action' = 'close'
            GROUP BY e.user_id, e.data->>'order_id'
        )
        INSERT INTO ledger_closedorder
            (user_id, order_id, first_close_at, first_close_event_id, last_close_at,
             realized_pnl, closing_notional, closing_fills, market, symbol, origin, promo_funding,
             last_position)
        SELECT o.user_id, o.order_id, o.first_at, o.first_event_id, o.last_at, o.pnl, o.notional,
            o.n, o.market, o.symbol, o.origin,
            (SELECT coalesce(jsonb_agg(DISTINCT p ORDER BY p), '[]'::jsonb)
             FROM jsonb_array_elements(o.promos) fill_promos,
                  jsonb_array_elements_text(fill_promos) p),
            o.last_position
        FROM orders o
        ON CONFLICT (user_id, order_id) DO UPDATE SET
            last_position = greatest(ledger_closedorder.last_position, EXCLUDED.last_position),
            realized_pnl = ledger_closedorder.realized_pnl + EXCLUDED.realized_pnl,
            closing_notional = ledger_closedorder.closing_notional + EXCLUDED.closing_notional,
            closing_fills = ledger_closedorder.closing_fills + EXCLUDED.closing_fills,
            last_close_at = greatest(ledger_closedorder.last_close_at, EXCLUDED.last_close_at),
            promo_funding = (
                SELECT coalesce(jsonb_agg(DISTINCT p ORDER BY p), '[]'::jsonb)
                FROM jsonb_array_elements_text(
                    ledger_closedorder.promo_funding || EXCLUDED.promo_funding) p),
            first_close_at = CASE WHEN (EXCLUDED.first_close_at, EXCLUDED.first_close_event_id)
                < (ledger_closedorder.first_close_at, ledger_closedorder.first_close_event_id)
                THEN EXCLUDED.first_close_at ELSE ledger_closedorder.first_close_at END,
            first_close_event_id = CASE WHEN (EXCLUDED.first_close_at, EXCLUDED.first_close_event_id)
                < (ledger_closedorder.first_close_at, ledger_closedorder.first_close_event_id)
                THEN EXCLUDED.first_close_event_id ELSE ledger_closedorder.first_close_event_id END,
            market = CASE WHEN (EXCLUDED.first_close_at, EXCLUDED.first_close_event_id)
                < (ledger_closedorder.first_close_at, ledger_closedorder.first_close_event_id)
                THEN EXCLUDED.market ELSE ledger_closedorder.market END,
            symbol = CASE WHEN (EXCLUDED.first_close_at, EXCLUDED.first_close_event_id)
                < (ledger_closedorder.first_close_at, ledger_closedorder.first_close_event_id)
                THEN EXCLUDED.symbol ELSE ledger_closedorder.symbol END,
            origin = CASE WHEN (EXCLUDED.first_close_at, EXCLUDED.first_close_event_id)
                < (ledger_closedorder.first_close_at, ledger_closedorder.first_close_event_id)
                THEN EXCLUDED.origin ELSE ledger_closedorder.origin END
        """,  # noqa: S608
        _params("trade.filled", after, upto),
    )


def _fold_risk_measures(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        f"""
        INSERT INTO ledger_riskmeasure (user_id, measure, occurred_at, event_id, reason)
        SELECT e.user_id, m.measure, e.occurred_at, e.event_id, coalesce(e.data->>'reason', '')
        FROM ledger_event e, jsonb_array_elements_text(e.data->'measures') AS m(measure)
        WHERE {_RANGE}
        ON CONFLICT (event_id, measure) DO NOTHING
        """,  # noqa: S608
        _params("risk.flagged", after, upto),
    )


register(
    Projector(
        "user_directory", ("user.registered",), ("ledger_exchangeuser",), _fold_user_directory
    )
)
register(
    Projector(
        "futures_wallets",
        ("futures_wallet.updated",),
        ("ledger_futureswalletstate",),
        _fold_wallets,
    )
)
register(
    Projector(
        "futures_positions",
        ("futures_positions.updated",),
        ("ledger_futurespositionsstate",),
        _fold_positions,
    )
)
register(Projector("holdings", ("holding.updated",), ("ledger_holdingstate",), _fold_holdings))
register(
    Projector("closed_orders", ("trade.filled",), ("ledger_closedorder",), _fold_closed_orders)
)
register(
    Projector("risk_measures", ("risk.flagged",), ("ledger_riskmeasure",), _fold_risk_measures)
)
