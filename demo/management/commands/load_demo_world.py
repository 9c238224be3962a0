"""python manage.py load_demo_world [--start 2026-12-01T10:00:00Z]

The first run makes the world as of --start (default: now); every later run
finds its campaign and applies the same world again, which adds nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Campaign
from config import clock
from demo import world
from ledger.configuration import apply_config

ADMIN_USER = "demo"
ADMIN_PASSWORD = "demo-password"  # noqa: S105 - the demo's own admin, refused in production


class Command(BaseCommand):
    help = "Configure, fund and invite the demo world (every program), and print where to look."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--start", help="the world's start instant when it is made (default: now)"
        )
        parser.add_argument("--campaign-days", type=int, default=3)
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="where the service answers"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("the demo world is refused in production")
        existing = Campaign.objects.filter(slug=world.SLUG).first()
        if existing is not None:
            # The world exists: the same dates, so the same document, so nothing new.
            demo = world.World(
                start=existing.starts_at.astimezone(dt.UTC),
                campaign_days=(existing.ends_at - existing.starts_at).days,
            )
        else:
            start = clock.parse_instant(options["start"]) if options["start"] else clock.now()
            demo = world.world_at(start, campaign_days=options["campaign_days"])
        for line in apply_config(world.document(demo), by="demo"):
            self.stdout.write(f"  {line}")
        admin, created = User.objects.get_or_create(
            username=ADMIN_USER, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(ADMIN_PASSWORD)
            admin.save()
            admin.groups.add(*Group.objects.filter(name__in=["operator", "finance"]))
        token = jwt.encode(
            {
                "sub": world.SHOWCASE_USER,
                # The token is checked against real time, whatever the demo's clock says.
                "iat": clock.real_now(),
                "exp": clock.real_now() + dt.timedelta(days=7),
            },
            settings.JWT_SIGNING_KEY,
            algorithm="HS256",
        )
        base = options["base_url"].rstrip("/")
        api = f"{base}/api/v1"
        made = "made now" if existing is None else "as made on its first start"
        self.stdout.write(
            f"""
demo world ({made}): campaign {demo.slug} {demo.start:%Y-%m-%d %H:%M} to {demo.campaign_end:%Y-%m-%d %H:%M} UTC
  admin      {base}/admin/   user {ADMIN_USER}, password {ADMIN_PASSWORD}
  API docs   {base}/api/docs/
  {world.SHOWCASE_USER} (campaign, vouchers, referrals, Earn): JWT valid 7 days
    {token}
  try, with JWT=<the token above>:
    curl -H "Authorization: Bearer $JWT" {api}/campaigns/{demo.slug}/me
    curl -H "Authorization: Bearer $JWT" {api}/vouchers
    curl -H "Authorization: Bearer $JWT" {api}/referrals/me/invitees
    curl -H "Authorization: Bearer $JWT" {api}/earn
"""
        )
