"""Every admin action and every custom admin page, tried by each staff role.

The tables below are the staff roles of docs/operations.md, written by hand:
who may run each action of the admin and open each page of its own. The test
discovers what the admin site really offers; an action or a page the tables
do not name (a new one), or one they name that the admin no longer has, fails
it. Each action is then posted by every role on a real row: a role the table
does not name is refused and the row stays as it was; a role it names does
the work.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.test import Client, RequestFactory
from django.urls import reverse
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from access.models import ServiceToken
from access.roles import sync_staff_groups
from access.services import create_service_token
from campaigns.models import Campaign, Invitation
from config.celery import app as celery_app
from earn.models import EarnTerms
from jobs.models import JobRun
from ledger.bookkeeping import open_funding_account
from ledger.ingestion import ingest
from ledger.models import Account, LedgerTransaction, QuarantinedInput
from referrals.jobs import settle_referrals
from referrals.models import CommunityPartner, ProgramTerms, ReferralCode, Settlement
from tests import events
from tests.campaigns.conftest import make_campaign
from vouchers import services as vouchers
from vouchers.models import Voucher, VoucherProgram

pytestmark = pytest.mark.django_db

VIEWER, OPERATOR, FINANCE, NO_GROUP, SUPERUSER = (
    "viewer",
    "operator",
    "finance",
    "no-group",
    "superuser",
)
ROLES = (VIEWER, OPERATOR, FINANCE, NO_GROUP, SUPERUSER)
EVERY_READER = frozenset({VIEWER, OPERATOR, FINANCE, SUPERUSER})
OPERATORS = frozenset({OPERATOR, SUPERUSER})
FINANCE_ONLY = frozenset({FINANCE, SUPERUSER})
NOBODY_BUT_SUPERUSER = frozenset({SUPERUSER})

# (screen, action) -> the roles that may run it (docs/operations.md, Staff roles).
ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("access.servicetoken", "revoke"): NOBODY_BUT_SUPERUSER,
    ("auth.group", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("auth.user", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("campaigns.invitation", "delete_selected"): OPERATORS,
    ("django_celery_beat.clockedschedule", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("django_celery_beat.crontabschedule", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("django_celery_beat.intervalschedule", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("django_celery_beat.solarschedule", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("django_celery_beat.periodictask", "delete_selected"): NOBODY_BUT_SUPERUSER,
    ("django_celery_beat.periodictask", "enable_tasks"): OPERATORS,
    ("django_celery_beat.periodictask", "disable_tasks"): OPERATORS,
    ("django_celery_beat.periodictask", "toggle_tasks"): OPERATORS,
    ("django_celery_beat.periodictask", "run_tasks"): OPERATORS,
    ("earn.earnterms", "delete_selected"): OPERATORS,
    ("ledger.quarantinedinput", "replay"): OPERATORS,
    ("ledger.quarantinedinput", "discard"): OPERATORS,
    ("referrals.communitypartner", "end_flags"): OPERATORS,
    ("referrals.programterms", "delete_selected"): OPERATORS,
    ("referrals.settlement", "rerun"): OPERATORS,
}

# The admin's own pages (URL name) -> the roles that may open them.
PAGES: dict[str, frozenset[str]] = {
    "ledger_account_fund": FINANCE_ONLY,
    "campaigns_invitation_upload": OPERATORS,
    "vouchers_voucher_grant": OPERATORS,
    "auth_user_password_change": NOBODY_BUT_SUPERUSER,
    "support_dashboard": EVERY_READER,
    "support_user_search": EVERY_READER,
    "support_user": EVERY_READER,
}

PASSWORD = "a-long-password-1"
NEW_PASSWORD = "another-long-password-2"
DAY = dt.date(2026, 11, 20)
IN_A_MONTH = dt.datetime(2026, 12, 21, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _setting(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-21T00:15:00Z")
    # Every test makes its staff accounts: a fast hash keeps the suite quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # "Run selected tasks" runs the job here rather than queueing it for a worker.
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    sync_staff_groups()


def _client(role: str) -> Client:
    user = User.objects.filter(username=role).first()
    if user is None and role == SUPERUSER:
        user = User.objects.create_superuser(role, f"{role}@example.com", PASSWORD)
    elif user is None:
        user = User.objects.create_user(role, password=PASSWORD, is_staff=True)
        if role != NO_GROUP:
            user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def _reads(role: str, screen: str) -> bool:
    """Whether the role may list the screen: every group reads the product
    and its schedules; staff accounts are the superuser's alone."""
    if role == SUPERUSER:
        return True
    return role in EVERY_READER and not screen.startswith("auth.")


def _changelist(screen: str) -> str:
    app, model = screen.split(".")
    return reverse(f"admin:{app}_{model}_changelist")


def _messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- discovery -------------------------------------------------------------------


def _registered_actions() -> set[tuple[str, str]]:
    request = RequestFactory().get("/admin/")
    request.user = User(username="any", is_superuser=True, is_staff=True, is_active=True)
    found = set()
    for model, model_admin in admin.site._registry.items():
        names = set(model_admin.get_actions(request))
        # An action declared on the screen that nobody may run still needs its line.
        names |= {
            action if isinstance(action, str) else action.__name__
            for action in model_admin.actions or ()
        }
        found |= {(model._meta.label_lower, name) for name in names}
    return found


def _names(patterns: list[Any]) -> set[str]:
    return {getattr(p, "name", None) or str(p.pattern) for p in patterns}


def _custom_pages() -> set[str]:
    found = set()
    for model, model_admin in admin.site._registry.items():
        standard = _names(admin.ModelAdmin(model, admin.site).get_urls())
        found |= _names(model_admin.get_urls()) - standard
    found |= _names(admin.site.get_urls()) - _names(admin.AdminSite.get_urls(admin.site))
    return found


def test_every_action_and_page_of_the_admin_is_in_the_table() -> None:
    assert _registered_actions() == set(ACTIONS)
    assert _custom_pages() == set(PAGES)
    assert set(CASES) == set(ACTIONS)
    assert set(PAGE_CASES) == set(PAGES)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_offered_exactly_its_actions(role: str) -> None:
    client = _client(role)
    for model in admin.site._registry:
        screen = model._meta.label_lower
        response = client.get(_changelist(screen))
        if not _reads(role, screen):
            assert response.status_code == 403, screen
            continue
        assert response.status_code == 200, screen
        form = response.context["action_form"]
        offered = {name for name, _ in form.fields["action"].choices if name} if form else set()
        expected = {a for (s, a), roles in ACTIONS.items() if s == screen and role in roles}
        assert offered == expected, screen


# --- the rows the actions are tried on ----------------------------------------------


@dataclass(frozen=True)
class Case:
    """One action tried on one row: ``arrange`` makes the row, ``observe``
    reads what the action changes, ``before`` is what it reads first and
    ``after`` what it reads once the action ran for the staff member named."""

    arrange: Callable[[], models.Model]
    observe: Callable[[models.Model], object]
    before: object
    after: Callable[[str], object]


def _stored(row: models.Model) -> dict[str, Any] | None:
    return type(row)._default_manager.filter(pk=row.pk).values().first()


def _exists(row: models.Model) -> bool:
    return _stored(row) is not None


def _deleted(arrange: Callable[[], models.Model]) -> Case:
    return Case(arrange, _exists, before=True, after=lambda by: False)


def _task(enabled: bool, job: str = "expire_vouchers") -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=45, period="minutes")
    return PeriodicTask.objects.create(
        name=f"test:{job}",
        task="jobs.run_scheduled_job",
        args=json.dumps([job]),
        interval=interval,
        enabled=enabled,
    )


def _enabled(row: models.Model) -> bool:
    return PeriodicTask.objects.get(pk=row.pk).enabled


def _beat_runs(row: models.Model) -> list[tuple[str, str, str]]:
    return list(JobRun.objects.values_list("job", "trigger", "status"))


def _corrected_input() -> QuarantinedInput:
    good = events.fill("u_5", order_id="o_5")
    ingest([{**good, "data": {**good["data"], "fee": 0.25}}], source="rest")
    entry = QuarantinedInput.objects.get()
    entry.raw = json.dumps(good)
    entry.save()
    return entry


def _resolution(row: models.Model) -> tuple[str, str, str]:
    entry = QuarantinedInput.objects.get(pk=row.pk)
    return entry.status, entry.replay_result, entry.resolved_by


def _settled_day_with_a_late_fill() -> Settlement:
    ingest([events.registered("r_1", occurred_at="2026-01-01T00:00:00Z")], source="test")
    code = ReferralCode.objects.get(user_id="r_1").code
    ingest(
        [
            events.registered("e_1", referral_code=code, occurred_at="2026-02-01T00:00:00Z"),
            events.fill("e_1", order_id="f1", action="open", occurred_at="2026-11-20T12:00:00Z"),
        ],
        source="test",
    )
    settle_referrals(day=DAY)
    # A fill of the day that arrived after it was settled: what a rerun settles.
    ingest(
        [events.fill("e_1", order_id="f2", action="open", occurred_at="2026-11-20T13:00:00Z")],
        source="test",
    )
    return Settlement.objects.get(day=DAY)


def _settlements(row: models.Model) -> list[tuple[int, int]]:
    return list(
        Settlement.objects.filter(day=DAY).order_by("run").values_list("run", "commissions")
    )


def _revoked_by(row: models.Model) -> tuple[bool, str]:
    token = ServiceToken.objects.get(pk=row.pk)
    return token.revoked_at is not None, token.revoked_by


def _invitation() -> Invitation:
    campaign = make_campaign(funding="0")
    return Invitation.objects.create(
        campaign=campaign, user_id="u_1", invited_at=IN_A_MONTH, source="test"
    )


def _future_earn_terms() -> EarnTerms:
    return EarnTerms.objects.create(
        effective_from=dt.date(2027, 1, 1),
        position_threshold=Decimal(1000),
        boosted_principal=Decimal(500),
        boosted_apr=Decimal("0.2"),
        base_apr=Decimal("0.05"),
    )


def _future_program_terms() -> ProgramTerms:
    return ProgramTerms.objects.create(
        program="futures",
        effective_from=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        tiers=[{"min_mx": "0", "rate": "0.15"}],
    )


CASES: dict[tuple[str, str], Case] = {
    ("access.servicetoken", "revoke"): Case(
        lambda: create_service_token(name="wallet")[0],
        _revoked_by,
        before=(False, ""),
        after=lambda by: (True, by),
    ),
    ("auth.group", "delete_selected"): _deleted(lambda: Group.objects.create(name="auditors")),
    ("auth.user", "delete_selected"): _deleted(
        lambda: User.objects.create_user("leaver", password=PASSWORD, is_staff=True)
    ),
    ("campaigns.invitation", "delete_selected"): _deleted(_invitation),
    ("django_celery_beat.clockedschedule", "delete_selected"): _deleted(
        lambda: ClockedSchedule.objects.create(clocked_time=IN_A_MONTH)
    ),
    ("django_celery_beat.crontabschedule", "delete_selected"): _deleted(
        lambda: CrontabSchedule.objects.create(minute="7", hour="3", timezone="UTC")
    ),
    ("django_celery_beat.intervalschedule", "delete_selected"): _deleted(
        lambda: IntervalSchedule.objects.create(every=9, period="days")
    ),
    ("django_celery_beat.solarschedule", "delete_selected"): _deleted(
        lambda: SolarSchedule.objects.create(event="sunrise", latitude=48.85, longitude=2.35)
    ),
    ("django_celery_beat.periodictask", "delete_selected"): _deleted(lambda: _task(True)),
    ("django_celery_beat.periodictask", "enable_tasks"): Case(
        lambda: _task(False), _enabled, before=False, after=lambda by: True
    ),
    ("django_celery_beat.periodictask", "disable_tasks"): Case(
        lambda: _task(True), _enabled, before=True, after=lambda by: False
    ),
    ("django_celery_beat.periodictask", "toggle_tasks"): Case(
        lambda: _task(True), _enabled, before=True, after=lambda by: False
    ),
    ("django_celery_beat.periodictask", "run_tasks"): Case(
        lambda: _task(True),
        _beat_runs,
        before=[],
        after=lambda by: [("expire_vouchers", "beat", "succeeded")],
    ),
    ("earn.earnterms", "delete_selected"): _deleted(_future_earn_terms),
    ("ledger.quarantinedinput", "replay"): Case(
        _corrected_input,
        _resolution,
        before=("open", "", ""),
        after=lambda by: ("replayed", "accepted", by),
    ),
    ("ledger.quarantinedinput", "discard"): Case(
        _corrected_input,
        _resolution,
        before=("open", "", ""),
        after=lambda by: ("discarded", "discarded", by),
    ),
    ("referrals.communitypartner", "end_flags"): Case(
        lambda: CommunityPartner.objects.create(
            user_id="r_1", since=dt.datetime(2026, 11, 1, tzinfo=dt.UTC), note="test"
        ),
        lambda row: CommunityPartner.objects.get(pk=row.pk).until is not None,
        before=False,
        after=lambda by: True,
    ),
    ("referrals.programterms", "delete_selected"): _deleted(_future_program_terms),
    ("referrals.settlement", "rerun"): Case(
        _settled_day_with_a_late_fill,
        _settlements,
        before=[(1, 1)],
        after=lambda by: [(1, 1), (2, 1)],
    ),
}


def _offered_any(role: str, screen: str) -> bool:
    return any(role in roles for (s, _), roles in ACTIONS.items() if s == screen)


@pytest.mark.parametrize(
    ("screen", "action", "role"),
    [(screen, action, role) for (screen, action) in ACTIONS for role in ROLES],
)
def test_an_action_runs_for_its_roles_only(screen: str, action: str, role: str) -> None:
    case = CASES[(screen, action)]
    row = case.arrange()
    assert row._meta.label_lower == screen
    assert case.observe(row) == case.before
    stored, logged = _stored(row), LogEntry.objects.count()

    response = _client(role).post(
        _changelist(screen),
        # "post": the confirmation of delete_selected; the other actions ignore it.
        {"action": action, "_selected_action": [row.pk], "post": "yes"},
        follow=True,
    )

    if role in ACTIONS[(screen, action)]:
        assert response.status_code == 200
        assert case.observe(row) == case.after(role)
        assert LogEntry.objects.filter(user__username=role).count() >= 1  # recorded
        return
    assert case.observe(row) == case.before
    assert _stored(row) == stored
    assert LogEntry.objects.count() == logged
    if not _reads(role, screen):
        assert response.status_code == 403
    elif _offered_any(role, screen):
        assert response.status_code == 200
        assert _messages(response) == ["No action selected."]
    else:
        # Offered no action at all, the post is only a look at the list.
        assert response.status_code == 200
        assert _messages(response) == []


@pytest.mark.parametrize("role", [OPERATOR, SUPERUSER])
@pytest.mark.parametrize("screen", ["referrals.programterms", "earn.earnterms"])
def test_terms_in_force_are_history_nobody_deletes(screen: str, role: str) -> None:
    if screen == "earn.earnterms":
        row: models.Model = EarnTerms.objects.create(
            effective_from=DAY,
            position_threshold=Decimal(1000),
            boosted_principal=Decimal(500),
            boosted_apr=Decimal("0.2"),
            base_apr=Decimal("0.05"),
        )
    else:
        row = ProgramTerms.objects.create(
            program="spot",
            effective_from=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            tiers=[{"min_mx": "0", "rate": "0.15"}],
        )
    client = _client(role)
    response = client.post(
        _changelist(screen),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    assert response.status_code == 403
    app, model = screen.split(".")
    assert client.post(reverse(f"admin:{app}_{model}_delete", args=[row.pk])).status_code == 403
    assert _exists(row)


# --- the admin's own pages ------------------------------------------------------------


@dataclass(frozen=True)
class PageCase:
    """A page of the admin's own: ``arrange`` makes what it works on and
    returns the arguments of its URL. A page that writes also has the form it
    posts and what that changes (``observe``), before and after."""

    arrange: Callable[[], list[object]]
    form: Callable[[], dict[str, Any]] | None = None
    observe: Callable[[], object] = lambda: None
    before: object = None
    after: object = None


def _funding_account() -> list[object]:
    return [open_funding_account(program="campaign:winter", asset="USDT").pk]


def _funded() -> tuple[Decimal, int]:
    account = Account.objects.get(program="campaign:winter")
    return account.balance, LedgerTransaction.objects.filter(kind="funding.top_up").count()


def _campaign() -> list[object]:
    make_campaign(funding="0")
    return []


def _invitation_upload() -> dict[str, Any]:
    csv = SimpleUploadedFile("vip.csv", b"user_id\nu_1\nu_2\n", content_type="text/csv")
    return {"campaign": Campaign.objects.get().pk, "file": csv}


def _voucher_program() -> list[object]:
    ingest([events.registered("u_1", occurred_at="2026-01-01T00:00:00Z")], source="test")
    program = vouchers.save_program(slug="welcome", title="Welcome vouchers")
    vouchers.save_template(program=program, code="fifty", face_value=Decimal(50), validity_days=7)
    return []


def _staff_member() -> list[object]:
    return [User.objects.create_user("leaver", password=PASSWORD, is_staff=True).pk]


PAGE_CASES: dict[str, PageCase] = {
    "ledger_account_fund": PageCase(
        _funding_account,
        form=lambda: {"amount": "250", "note": "budget FIN-9", "key": "k-1"},
        observe=_funded,
        before=(Decimal(0), 0),
        after=(Decimal(250), 1),
    ),
    "campaigns_invitation_upload": PageCase(
        _campaign,
        form=_invitation_upload,
        observe=lambda: sorted(Invitation.objects.values_list("user_id", flat=True)),
        before=[],
        after=["u_1", "u_2"],
    ),
    "vouchers_voucher_grant": PageCase(
        _voucher_program,
        form=lambda: {
            "program": VoucherProgram.objects.get().pk,
            "template": "fifty",
            "user_id": "u_1",
        },
        observe=lambda: list(Voucher.objects.values_list("user_id", "template__code")),
        before=[],
        after=[("u_1", "fifty")],
    ),
    "auth_user_password_change": PageCase(
        _staff_member,
        form=lambda: {
            "usable_password": "true",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
        observe=lambda: User.objects.get(username="leaver").check_password(NEW_PASSWORD),
        before=False,
        after=True,
    ),
    "support_dashboard": PageCase(list),
    "support_user_search": PageCase(list),
    "support_user": PageCase(lambda: ["u_1"]),
}


@pytest.mark.parametrize(("page", "role"), [(page, role) for page in PAGES for role in ROLES])
def test_a_page_opens_and_writes_for_its_roles_only(page: str, role: str) -> None:
    case = PAGE_CASES[page]
    url = reverse(f"admin:{page}", args=case.arrange())
    client = _client(role)
    allowed = role in PAGES[page]
    assert client.get(url).status_code == (200 if allowed else 403)
    if case.form is None:
        return
    assert case.observe() == case.before
    response = client.post(url, case.form())
    if allowed:
        assert response.status_code == 302
        assert case.observe() == case.after
    else:
        assert response.status_code == 403
        assert case.observe() == case.before
