"""Every ops action in the admin is recorded in the event log with the staff member."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from ledger.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client() -> Client:
    operator = User.objects.create_user("ops-audit", password="a-long-password-1", is_staff=True)
    operator.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(operator)
    return client


def _audit() -> list[dict[str, object]]:
    return [
        event.data for event in Event.objects.filter(type="ops.admin_action").order_by("position")
    ]


def test_a_change_through_an_admin_form_is_an_event(
    operator_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROZEN_NOW", "2026-11-20T00:00:00Z")
    page = operator_client.post(
        "/admin/referrals/communitypartner/add/",
        {"user_id": "u_7", "note": "KOL"},
    )
    assert page.status_code == 302
    [event] = _audit()
    assert event["staff"] == "ops-audit"
    assert event["action"] == "add"
    assert event["object"] == "referrals.communitypartner"
    assert event["object_repr"] == "u_7 partner since 2026-11-20"
    # The flag itself is the service's change, with who made it.
    flagged = Event.objects.get(type="referral.partner_flagged")
    assert (flagged.user_id, flagged.data) == ("u_7", {"by": "ops-audit", "note": "KOL"})


def test_an_admin_action_is_an_event_per_selected_object(operator_client: Client) -> None:
    from ledger.ingestion import ingest
    from ledger.models import QuarantinedInput

    ingest(['{"not": "an event"}'], source="test")
    entry = QuarantinedInput.objects.get()
    operator_client.post(
        "/admin/ledger/quarantinedinput/",
        {"action": "discard", "_selected_action": [entry.pk]},
    )
    [event] = _audit()
    assert (event["staff"], event["action"], event["message"]) == (
        "ops-audit",
        "change",
        "action: discard",
    )
    assert event["object"] == "ledger.quarantinedinput"
    assert event["object_id"] == str(entry.pk)
