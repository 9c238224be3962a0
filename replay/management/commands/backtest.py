"""python manage.py backtest DRAFT --from DAY --to DAY [--live NAME] [--seed S] [--step 60] [--json FILE] [--keep]"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from replay import backtest, backtest_report
from replay.forecasts import Refused, Window


class Command(BaseCommand):
    help = (
        "Forecast a draft program file (apply_config format: one campaign, referral terms or"
        " Earn terms) over the recorded history of the UTC days --from to --to, in a scratch"
        " database (<name>_backtest, dropped unless --keep): its program's figures (for a"
        " campaign participants, spins and cards, covered orders, rewards), cost per day"
        " against the draft's funding top-ups, the day the"
        " budget runs out, and with --live the live program's figures beside them."
        " Never writes to this database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("draft", type=Path, help="the draft program file (YAML or JSON)")
        parser.add_argument("--from", dest="first", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--to", dest="last", type=dt.date.fromisoformat, required=True)
        parser.add_argument(
            "--live", help="the live program to compare with (a campaign's slug, referrals or earn)"
        )
        parser.add_argument("--seed", help="the draws' seed (default: a random one, printed)")
        parser.add_argument(
            "--step", default="60", help="minutes between job runs (60, or 5m, 1h; default 60)"
        )
        parser.add_argument("--json", type=Path, help="also write the report as JSON here")
        parser.add_argument("--into", help="the scratch database's name (default <name>_backtest)")
        parser.add_argument("--keep", action="store_true", help="keep the scratch database")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["draft"].is_file():
            raise CommandError(f"no such file {options['draft']}")
        try:
            report = backtest.launch(
                options["draft"].read_text(),
                Window(options["first"], options["last"]),
                seed=backtest.parse_seed(options["seed"]),
                step=backtest.parse_step(options["step"]),
                live=options["live"],
                into=options["into"],
                keep=options["keep"],
            )
        except Refused as refusal:
            raise CommandError(str(refusal)) from None
        except RuntimeError as failure:
            raise CommandError(str(failure)) from None
        self.stdout.write(backtest_report.text(report))
        if options["json"]:
            options["json"].write_text(json.dumps(report, indent=2))
