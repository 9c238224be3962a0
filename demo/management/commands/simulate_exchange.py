"""python manage.py simulate_exchange (after load_demo_world)"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from campaigns import selectors as campaign_selectors
from campaigns.models import Campaign
from campaigns.services import CampaignRefusal, register, spin
from config import clock
from config.shutdown import stop_on_signals
from demo import world
from demo.exchange import SimulatedExchange
from earn.services import set_active
from ledger.models import ExchangeUser
from ledger.stream import publish_events
from referrals.models import ReferralCode


class Command(BaseCommand):
    help = (
        "Play the exchange for the demo users: registrations, fills, wallet, position and"
        " holding events on the event stream; the users register in the campaign, spin and"
        " activate Earn as the frontend would."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--trades", type=int, default=6, help="fills per second")
        parser.add_argument("--seconds", type=int, default=0, help="stop after (0: never)")

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        # Every run sends events of its own: ids never repeat those of an earlier run.
        exchange = SimulatedExchange(prefix=f"demo-{clock.real_now():%Y%m%dT%H%M%S%f}")
        stop = stop_on_signals()

        def publish(events: list[dict[str, Any]]) -> None:
            publish_events(client, settings.EVENT_STREAM, [orjson.dumps(e) for e in events])

        users = world.user_ids()
        # A later start of the demo finds its users registered: they are not again.
        known = set(
            ExchangeUser.objects.filter(user_id__in=users).values_list("user_id", flat=True)
        )
        referrers = [u for u in users if world.referrer_of(u) is None]
        now = clock.now()
        publish([exchange.registration(u, now, None) for u in referrers if u not in known])
        codes = self._wait(lambda: self._codes(referrers), len(referrers), "referral codes")
        invited = [u for u in users if u not in referrers and u not in known]
        publish(
            [exchange.registration(u, now, codes.get(world.referrer_of(u) or "")) for u in invited]
        )
        publish([e for u in users for e in exchange.opening_state(u, clock.now())])
        self._wait(
            lambda: ExchangeUser.objects.filter(user_id__in=users).count(), len(users), "users"
        )
        campaign = Campaign.objects.get(slug=world.SLUG)
        for user in users:
            try:
                register(campaign, user)
            except CampaignRefusal:
                # Registration has closed (a later start, after the campaign) or ops
                # disqualified the user: they trade without it.
                continue
        for user in users[: world.EARNERS]:
            set_active(user, True)
        self.stdout.write(f"exchange: {len(users)} demo users trading", ending="\n")
        began = time.monotonic()
        ticks = 0
        while not stop.is_set():
            publish(exchange.tick(clock.now(), options["trades"]))
            ticks += 1
            if ticks % 5 == 0:
                self._spin(campaign, users)
            if options["seconds"] and time.monotonic() - began >= options["seconds"]:
                break
            stop.wait(1)
        self.stdout.write(f"exchange: stopped after {ticks} ticks")

    def _codes(self, users: list[str]) -> dict[str, str]:
        return dict(ReferralCode.objects.filter(user_id__in=users).values_list("user_id", "code"))

    def _wait(self, probe: Any, wanted: int, what: str) -> Any:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            value = probe()
            if (len(value) if isinstance(value, dict) else value) >= wanted:
                return value
            time.sleep(0.5)
        raise SystemExit(f"exchange: the consumer did not bring in the {what} within 60 s")

    def _spin(self, campaign: Campaign, users: list[str]) -> None:
        """Use every spin the users have, as they would in the app."""
        now = clock.now()
        for participant in campaign.participants.filter(user_id__in=users):
            progress = campaign_selectors.progress(campaign, participant, now)
            kinds = ["coverage"] * progress.coverage_spins + [
                "daily"
            ] * progress.daily_spins_available
            for kind in kinds:
                try:
                    spin(campaign, participant.user_id, kind)
                except CampaignRefusal:
                    break  # the campaign ended or the budget ran out: nothing to spin
