"""Ops staff: the viewer, operator and finance groups, and revoking tokens in the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from access.models import ServiceToken
from access.services import create_service_token

pytestmark = pytest.mark.django_db


def _codes(group: str) -> set[str]:
    return {
        f"{app}.{code}"
        for app, code in Group.objects.get(name=group).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_the_groups_exist_after_migrate_with_their_roles() -> None:
    viewer, operator, finance = _codes("viewer"), _codes("operator"), _codes("finance")
    assert {"ledger.view_event", "ledger.view_posting", "jobs.view_jobrun"} <= viewer
    assert "ledger.fund_account" not in viewer | operator
    assert "ledger.fund_account" in finance
    assert "ledger.change_quarantinedinput" in operator
    assert "django_celery_beat.change_periodictask" in operator
    # Nobody may edit or delete the facts.
    for facts in ("event", "posting", "ledgertransaction"):
        for verb in ("add", "change", "delete"):
            assert f"ledger.{verb}_{facts}" not in viewer | operator | finance


def test_a_token_is_revoked_from_the_admin() -> None:
    row, _ = create_service_token(name="exchange")
    admin = User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/access/servicetoken/")
    assert listing.status_code == 200 and b"exchange" in listing.content
    response = client.post(
        "/admin/access/servicetoken/",
        {"action": "revoke", "_selected_action": [row.pk]},
        follow=True,
    )
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.revoked_at is not None and row.revoked_by == "ops"
    assert ServiceToken.objects.filter(revoked_at__isnull=True).count() == 0


def test_a_viewer_cannot_revoke() -> None:
    row, _ = create_service_token(name="exchange")
    viewer = User.objects.create_user("support", password="a-long-password-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(viewer)
    assert client.get("/admin/access/servicetoken/").status_code == 200
    client.post("/admin/access/servicetoken/", {"action": "revoke", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.revoked_at is None
