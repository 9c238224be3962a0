"""How replay rebuilds the referrals (replay.registry): partner flags are set
again; settlements and payouts are decided again by the jobs. Codes and
relations are read models of the exchange's registrations."""

from __future__ import annotations

from referrals import services
from replay import registry
from replay.registry import RecordedEvent


def _flag(partner: bool) -> registry.Apply:
    def flag(batch: list[RecordedEvent]) -> None:
        for event in batch:
            services.set_partner(
                event.user_id, partner=partner, by=event.data["by"], note=event.data["note"]
            )

    return flag


registry.action("referral.partner_flagged", _flag(True))
registry.action("referral.partner_unflagged", _flag(False))
registry.decisions("referral.commissions_paid")

registry.compared(
    "referrals: relations",
    "SELECT referee_id, referrer_id, code, registered_at, refusal FROM referrals_relation"
    ' ORDER BY referee_id COLLATE "C"',
)
registry.compared(
    "referrals: partners",
    "SELECT user_id, since, until, note FROM referrals_communitypartner"
    ' ORDER BY user_id COLLATE "C", since',
    key_columns=2,
)
registry.compared(
    "referrals: commissions",
    "SELECT day, run, program, referrer_id, referee_id, asset, fills, fees, rate, amount,"
    " status, settled_as, invalid_at FROM referrals_commission ORDER BY day, run,"
    ' program COLLATE "C", referrer_id COLLATE "C", referee_id COLLATE "C", asset COLLATE "C"',
    key_columns=6,
)
registry.compared(
    "referrals: settlements",
    "SELECT day, run, settled_at, commissions FROM referrals_settlement ORDER BY day, run",
    key_columns=2,
)
registry.compared(
    "referrals: payouts",
    "SELECT payout_key, day, referrer_id, asset, commissions, carried_in, amount, carried_out"
    ' FROM referrals_commissionpayout ORDER BY payout_key COLLATE "C"',
)
registry.compared(
    "referrals: distributions",
    # unpaid_from names a commission by its id, which another database numbers
    # otherwise: the commissions themselves are compared above.
    "SELECT day, distributed_at, referrers, invalidated"
    " FROM referrals_distribution ORDER BY day, distributed_at",
    key_columns=2,
)
