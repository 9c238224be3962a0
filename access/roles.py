"""The staff groups of the admin, declared in code and synced after every migrate.

- **viewer**: reads everything (support, auditors).
- **operator**: runs programs: edits campaigns, vouchers, referral and Earn
  settings, pauses schedules, replays or discards quarantined input, starts
  backtests of drafts.
- **finance**: reads everything and funds accounts (``ledger.fund_account``).

Ledger facts (events, transactions, postings) are read-only for everyone:
nobody gets their add/change/delete permissions.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

PRODUCT_APPS = (
    "access",
    "ledger",
    "jobs",
    "campaigns",
    "vouchers",
    "referrals",
    "earn",
    "replay",
)
PROGRAM_APPS = ("campaigns", "vouchers", "referrals", "earn")
SCHEDULE_APP = "django_celery_beat"

VIEWER, OPERATOR, FINANCE = "viewer", "operator", "finance"


def _view_all() -> Q:
    return Q(
        content_type__app_label__in=(*PRODUCT_APPS, SCHEDULE_APP), codename__startswith="view_"
    )


def role_permissions() -> dict[str, Q]:
    return {
        VIEWER: _view_all(),
        OPERATOR: _view_all()
        | Q(content_type__app_label__in=PROGRAM_APPS)
        | Q(content_type__app_label=SCHEDULE_APP, codename__startswith="change_")
        | Q(content_type__app_label="ledger", codename="change_quarantinedinput")
        | Q(content_type__app_label="jobs", codename="change_jobrun")
        | Q(content_type__app_label="replay", codename="add_backtest"),
        FINANCE: _view_all() | Q(content_type__app_label="ledger", codename="fund_account"),
    }


def sync_staff_groups() -> dict[str, int]:
    """Create the groups and set each one's permissions to exactly its role."""
    counts = {}
    for name, query in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = list(Permission.objects.filter(query))
        group.permissions.set(permissions)
        counts[name] = len(permissions)
    return counts
