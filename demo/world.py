"""The demo world: every program configured, funded and populated, as one
``apply_config`` document, so the demo exercises the same path ops use.

There is one world per database, named ``demo``: the campaign, the voucher
program and every funding top-up carry fixed names and keys, so applying the
document again (every later start of the demo) adds nothing. The world is
made on the first start, and its start instant is the campaign's: later
starts read it back from the campaign (``load_demo_world``) and write the
same document, dates included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

SLUG = "demo"
USERS = 40
REFERRERS = 8  # demo_000 .. demo_007 invite the others
EARNERS = 20  # demo_000 .. demo_019 activate Futures Earn
HEAVY_TRADERS = 10  # demo_000 .. demo_009 trade six times as often, but the showcase user
# The demo user whose JWT is printed, with data in every program: a campaign
# participant, an Earn user, a referrer whose referees (demo_008, a heavy
# trader, and three others) earn it commissions, and a voucher holder. It
# trades at the others' pace and holds a 1,000 USDT voucher besides the 20
# everyone has, so that its coupon center shows a voucher being consumed
# loss by loss, not only one used up by its first losing order.
SHOWCASE_USER = "demo_000"
# The showcase user's MX holding: the futures program's 20% tier.
SHOWCASE_MX = "20000"


def user_ids() -> list[str]:
    return [f"demo_{n:03d}" for n in range(USERS)]


def referrer_of(user_id: str) -> str | None:
    n = int(user_id.split("_")[1])
    return None if n < REFERRERS else f"demo_{n % REFERRERS:03d}"


@dataclass(frozen=True)
class World:
    start: dt.datetime
    campaign_days: int

    @property
    def slug(self) -> str:
        return SLUG

    @property
    def campaign_end(self) -> dt.datetime:
        return self.start + dt.timedelta(days=self.campaign_days)


def world_at(now: dt.datetime, *, campaign_days: int = 3) -> World:
    return World(start=now.replace(second=0, microsecond=0), campaign_days=campaign_days)


def document(world: World) -> dict[str, Any]:
    """The ``apply_config`` document of the world (docs/configuration.md)."""
    slug = world.slug
    users = user_ids()
    return {
        "funding_accounts": [
            _funding(f"campaign:{slug}", "USDT", "200000", slug),
            _funding(f"vouchers:{slug}", "USDT", "50000", slug),
            _funding("referrals", "USDT", "20000", slug),
            _funding("earn", "USDT", "20000", slug),
            _funding("earn", "USDC", "20000", slug),
        ],
        "campaigns": [
            {
                "slug": slug,
                "title": "Demo loss coverage",
                "description": "Trade 5,000 USDT of futures, spin for a Coverage Card.",
                "starts_at": _iso(world.start),
                "ends_at": _iso(world.campaign_end),
                "volume_target": "5000",
                "lateness_minutes": 30,
                "invitations": users,
            }
        ],
        # The published terms, written out so ops see them in the admin.
        "referral_programs": [
            {
                "program": "futures",
                "effective_from": _iso(_midnight(world.start)),
                "validity_days": 1080,
                "tiers": [
                    {"min_mx": "0", "rate": "0.10"},
                    {"min_mx": "10000", "rate": "0.20"},
                    {"min_mx": "100000", "rate": "0.30"},
                ],
            },
            {
                "program": "spot",
                "effective_from": _iso(_midnight(world.start)),
                "tiers": [
                    {"min_mx": "0", "rate": "0.20"},
                    {"min_mx": "50000", "rate": "0.40"},
                    {"min_mx": "100000", "rate": "0.50"},
                ],
                "partner_rate": "0.60",
            },
        ],
        "earn_terms": [
            {
                "effective_from": world.start.date().isoformat(),
                "boosted_apr": "0.15",
                "base_apr": "0.03",
            }
        ],
        "voucher_programs": [
            {
                "slug": slug,
                "title": "Demo loss-coverage vouchers",
                "templates": [
                    {"code": "twenty", "face_value": "20", "validity_days": 7},
                    {"code": "thousand", "face_value": "1000", "validity_days": 30},
                ],
                "grants": [
                    *(
                        {"key": f"{slug}-{user}", "user_id": user, "template": "twenty"}
                        for user in users
                    ),
                    {
                        "key": f"{slug}-{SHOWCASE_USER}-thousand",
                        "user_id": SHOWCASE_USER,
                        "template": "thousand",
                    },
                ],
            }
        ],
    }


def _funding(program: str, asset: str, amount: str, slug: str) -> dict[str, Any]:
    # The key names the world and the pool, never the start: one top-up per pool, ever.
    return {
        "program": program,
        "asset": asset,
        "top_ups": [{"key": f"{slug}:{program}:{asset}", "amount": amount, "note": "demo world"}],
    }


def _midnight(instant: dt.datetime) -> dt.datetime:
    return instant.replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(instant: dt.datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")
