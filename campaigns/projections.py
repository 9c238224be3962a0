"""Read models of the campaigns, folded from the log (see ledger.projection).

Two projectors: ``campaigns`` folds the product's own campaign events
(registration, card, daily prize, coverage draw) into participants, spins,
draws and rewards; ``campaign_volume`` folds ``trade.filled`` into each
participant's valid volume per UTC day (RULES.md section 1, "Valid volume").
Both are split-independent: a fill counts only if it was appended after the
registration (``registered_position``), whatever ranges the log is folded in.
"""

from __future__ import annotations

from typing import Any

from ledger.projection import Projector, register

_RANGE = "e.position > %(after)s AND e.position <= %(upto)s"


def _fold_campaign_events(cursor: Any, after: int, upto: int) -> None:
    params = {"after": after, "upto": upto}
    cursor.execute(
        f"""
        INSERT INTO campaigns_participant (campaign_id, user_id, registered_at, registered_position)
        SELECT c.id, e.user_id, e.occurred_at, e.position
        FROM ledger_event e JOIN campaigns_campaign c ON c.slug = e.data->>'campaign'
        WHERE {_RANGE} AND e.type = 'campaign.registered'
        ON CONFLICT (campaign_id, user_id) DO NOTHING
        """,  # noqa: S608 - constant fragments only
        params,
    )
    cursor.execute(
        f"""
        UPDATE campaigns_participant p
        SET card_percent = (e.data->>'percent')::numeric, card_drawn_at = e.occurred_at
        FROM ledger_event e JOIN campaigns_campaign c ON c.slug = e.data->>'campaign'
        WHERE {_RANGE} AND e.type = 'campaign.card_drawn'
          AND p.campaign_id = c.id AND p.user_id = e.user_id
        """,  # noqa: S608
        params,
    )
    cursor.execute(
        f"""
        WITH spins AS (
            INSERT INTO campaigns_dailyspin (campaign_id, user_id, number, amount, spun_at)
            SELECT c.id, e.user_id, (e.data->>'number')::int, (e.data->>'amount')::numeric,
                e.occurred_at
            FROM ledger_event e JOIN campaigns_campaign c ON c.slug = e.data->>'campaign'
            WHERE {_RANGE} AND e.type = 'campaign.daily_prize_won'
            ON CONFLICT (campaign_id, user_id, number) DO NOTHING
            RETURNING campaign_id, user_id, number, amount, spun_at
        )
        INSERT INTO campaigns_reward
            (id, campaign_id, user_id, kind, reference, amount, earned_at, idempotency_key)
        SELECT hashtextextended(k.key, 0), s.campaign_id, s.user_id, 'daily_prize',
            s.number::text, s.amount, s.spun_at, k.key
        FROM spins s JOIN campaigns_campaign c ON c.id = s.campaign_id,
            LATERAL (SELECT 'campaign:' || c.slug || ':prize:' || s.user_id || ':' || s.number
                     AS key) k
        ON CONFLICT (idempotency_key) DO NOTHING
        """,  # noqa: S608
        params,
    )
    cursor.execute(
        f"""
        WITH draws AS (
            INSERT INTO campaigns_coveragedraw (campaign_id, user_id, percent, losing_orders,
                covered, candidates_digest, chosen, drawn_at)
            SELECT c.id, e.user_id, (e.data->>'percent')::numeric,
                (e.data->>'losing_orders')::int, (e.data->>'covered')::int,
                e.data->>'candidates_digest', e.data->'chosen', e.occurred_at
            FROM ledger_event e JOIN campaigns_campaign c ON c.slug = e.data->>'campaign'
            WHERE {_RANGE} AND e.type = 'campaign.coverage_drawn'
            ON CONFLICT (campaign_id, user_id) DO NOTHING
            RETURNING campaign_id, user_id, chosen, drawn_at
        )
        INSERT INTO campaigns_reward
            (id, campaign_id, user_id, kind, reference, amount, earned_at, idempotency_key)
        SELECT hashtextextended(k.key, 0), d.campaign_id, d.user_id, 'coverage_rebate',
            o->>'order_id', (o->>'rebate')::numeric, d.drawn_at, k.key
        FROM draws d JOIN campaigns_campaign c ON c.id = d.campaign_id,
            jsonb_array_elements(d.chosen) o,
            LATERAL (SELECT 'campaign:' || c.slug || ':rebate:' || d.user_id || ':'
                     || (o->>'order_id') AS key) k
        WHERE (o->>'rebate')::numeric > 0
        ON CONFLICT (idempotency_key) DO NOTHING
        """,  # noqa: S608
        params,
    )


def _fold_volume(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        f"""
        INSERT INTO campaigns_dailyvolume AS v (campaign_id, user_id, day, volume, last_position)
        SELECT p.campaign_id, e.user_id, (e.occurred_at AT TIME ZONE 'UTC')::date,
            sum((e.data->>'notional')::numeric), max(e.position)
        FROM ledger_event e
        JOIN campaigns_participant p
            ON p.user_id = e.user_id AND e.position > p.registered_position
        JOIN campaigns_campaign c ON c.id = p.campaign_id
        WHERE {_RANGE} AND e.type = 'trade.filled'
          AND e.data->>'market' IN ('usdt_m', 'usdc_m', 'coin_m')
          AND (e.data->>'fee_rate')::numeric <> 0
          AND NOT (c.excluded_symbols ? (e.data->>'symbol'))
          AND e.occurred_at >= p.registered_at AND e.occurred_at < c.ends_at
        GROUP BY 1, 2, 3
        ON CONFLICT (campaign_id, user_id, day) DO UPDATE SET
            volume = v.volume + EXCLUDED.volume,
            last_position = greatest(v.last_position, EXCLUDED.last_position)
        """,  # noqa: S608
        {"after": after, "upto": upto},
    )


register(
    Projector(
        "campaigns",
        (
            "campaign.registered",
            "campaign.card_drawn",
            "campaign.daily_prize_won",
            "campaign.coverage_drawn",
        ),
        (
            "campaigns_participant",
            "campaigns_dailyspin",
            "campaigns_coveragedraw",
            "campaigns_reward",
        ),
        _fold_campaign_events,
    )
)
register(
    Projector(
        "campaign_volume",
        ("trade.filled",),
        ("campaigns_dailyvolume",),
        _fold_volume,
    )
)
