"""Recompute every random outcome of a campaign from its revealed seed.

What an auditor would do with the seed alone (the algorithm is in
``campaigns.rules``): every card, every daily prize, every covered order. Each
difference is reported; none means the campaign's draws are what the seed says.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from campaigns import rules, selectors
from campaigns.models import Campaign, CoverageDraw, DailySpin, Participant

CHUNK = 2_000


def verify_campaign(campaign: Campaign) -> Iterator[str]:
    if rules.seed_hash(campaign.seed) != campaign.seed_hash:
        yield f"the seed does not hash to the published {campaign.seed_hash}"
    cards = rules.parse_table(campaign.card_table, "percent")
    prizes = rules.parse_table(campaign.prize_table, "amount")
    for participant in Participant.objects.filter(
        campaign=campaign, card_percent__isnull=False
    ).iterator(CHUNK):
        expected = rules.card_for(campaign.seed, campaign.slug, participant.user_id, cards)
        if participant.card_percent != expected:
            yield f"{participant.user_id}: card {participant.card_percent}% but the seed gives {expected}%"
    for spin in DailySpin.objects.filter(campaign=campaign).iterator(CHUNK):
        expected = rules.daily_prize_for(
            campaign.seed, campaign.slug, spin.user_id, spin.number, prizes
        )
        if spin.amount != expected:
            yield f"{spin.user_id}: daily spin {spin.number} won {spin.amount} but the seed gives {expected}"
    yield from _verify_draws(campaign)


def _verify_draws(campaign: Campaign) -> Iterator[str]:
    last_id = 0
    while True:
        participants = list(
            Participant.objects.filter(
                campaign=campaign, card_percent__isnull=False, id__gt=last_id
            )
            .order_by("id")
            .values_list("id", "user_id", "card_percent")[:CHUNK]
        )
        if not participants:
            return
        last_id = participants[-1][0]
        orders = selectors.first_losing_orders(campaign, [p[0] for p in participants])
        draws = {
            draw.user_id: draw
            for draw in CoverageDraw.objects.filter(
                campaign=campaign, user_id__in=[p[1] for p in participants]
            )
        }
        for _, user_id, percent in participants:
            assert percent is not None  # filtered on card_percent above
            draw = draws.get(user_id)
            if draw is None:
                if campaign.drawn_at is not None:
                    yield f"{user_id}: holds a {percent}% card but has no draw"
                continue
            result = selectors.draw_for(campaign, user_id, percent, orders.get(user_id, []))
            if result.candidates_digest != draw.candidates_digest:
                yield f"{user_id}: the losing orders drawn from differ from the log's today"
            recorded = [(item["order_id"], Decimal(item["rebate"])) for item in draw.chosen]
            expected = [(order.order_id, rebate) for order, rebate in result.chosen]
            if (draw.losing_orders, draw.covered, recorded) != (
                result.losing_orders,
                result.covered,
                expected,
            ):
                yield (
                    f"{user_id}: recorded {draw.covered} of {draw.losing_orders} {recorded}, "
                    f"the seed gives {result.covered} of {result.losing_orders} {expected}"
                )
