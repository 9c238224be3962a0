from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.models import Campaign
from campaigns.verification import verify_campaign


class Command(BaseCommand):
    help = (
        "Recompute every card, daily prize and covered order of a campaign from its seed "
        "and compare with what was recorded. Exits non-zero on any difference."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        campaign = Campaign.objects.filter(slug=options["slug"]).first()
        if campaign is None:
            raise CommandError(f"no campaign {options['slug']!r}")
        differences = 0
        for difference in verify_campaign(campaign):
            differences += 1
            self.stdout.write(f"DIFFERENCE {difference}")
        if differences:
            raise CommandError(
                f"{differences} difference(s): the recorded draws do not match the seed"
            )
        state = "drawn" if campaign.drawn_at else "not drawn yet"
        self.stdout.write(f"{campaign.slug}: every recorded outcome matches the seed ({state})")
