"""The demo world: every program configured, funded and populated, as one
``apply_config`` document, so the demo exercises the same path ops use.

A world is named by its start instant (``demo-YYYYMMDD-HHMM``): each launch
of the demo opens its own campaign, voucher grants and funding, and a second
launch within the same minute applies nothing twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

USERS = 40
REFERRERS = 8  # demo_000 .. demo_007 invite the others
EARNERS = 20  # demo_000 .. demo_019 activate Futures Earn
# The demo user whose JWT is printed: invited by demo_000, in every program.
SHOWCASE_USER = "demo_010"


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
        return f"demo-{self.start:%Y%m%d-%H%M}"

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
                "templates": [{"code": "twenty", "face_value": "20", "validity_days": 7}],
                "grants": [
                    {"key": f"{slug}-{user}", "user_id": user, "template": "twenty"}
                    for user in users
                ],
            }
        ],
    }


def _funding(program: str, asset: str, amount: str, slug: str) -> dict[str, Any]:
    return {
        "program": program,
        "asset": asset,
        "top_ups": [{"key": f"{slug}:{program}:{asset}", "amount": amount, "note": "demo world"}],
    }


def _midnight(instant: dt.datetime) -> dt.datetime:
    return instant.replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(instant: dt.datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")
