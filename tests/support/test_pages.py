"""The admin pages: who may open them, and what they show."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from campaigns.models import Campaign


def _staff(group: str | None) -> Client:
    user, _ = User.objects.get_or_create(username=f"staff-{group or 'none'}", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def _charts(html: str) -> dict[str, object]:
    found = re.search(r'<script id="dashboard-charts" type="application/json">(.*?)</script>', html)
    assert found, "the dashboard carries its chart data"
    data: dict[str, object] = json.loads(found.group(1))
    return data


@pytest.mark.django_db
def test_the_pages_need_staff_with_view_permissions() -> None:
    pages = ("/admin/support/dashboard/", "/admin/support/users/", "/admin/support/users/u_1/")
    for page in pages:
        response = Client().get(page)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        assert _staff(None).get(page).status_code == 403
    for group in ("viewer", "operator", "finance"):
        client = _staff(group)
        assert all(client.get(page).status_code == 200 for page in pages)


def test_the_index_leads_to_both_pages(winter: Campaign) -> None:
    client = _staff("viewer")
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/support/dashboard/"' in index
    assert 'action="/admin/support/users/"' in index
    found = client.get("/admin/support/users/", {"user_id": " u_1 "})
    assert (found.status_code, found["Location"]) == (302, "/admin/support/users/u_1/")


def test_the_support_view_shows_the_users_facts(winter: Campaign) -> None:
    page = _staff("viewer").get("/admin/support/users/u_1/").content.decode()
    assert '<td data-fact="account_type">main</td>' in page
    assert 'href="/admin/support/users/u_sub/"' in page  # sub-accounts link to their own view
    assert 'href="/admin/support/users/r_1/"' in page  # and so does the referrer
    assert "10.2739726" in page and "voucher.compensation" in page
    assert 'id="section-credits" data-total="5"' in page
    unknown = _staff("operator").get("/admin/support/users/u_10/").content.decode()
    assert "not known: no user.registered event" in unknown
    assert 'id="section-quarantine" data-total="1"' in unknown


def test_the_dashboard_carries_its_charts_and_the_health(winter: Campaign) -> None:
    client = _staff("operator")
    page = client.get("/admin/support/dashboard/").content.decode()
    # The newest campaign first, over its life.
    assert 'value="campaign:winter" selected' in page
    assert 'value="2026-10-25"' in page and 'value="2026-11-29"' in page
    data = _charts(page)
    assert data["days"][0] == "2026-10-25" and len(data["days"]) == 36  # type: ignore[index,arg-type]
    assert 'src="/static/support/vendor/chart.js/chart.umd.js"' in page
    assert 'id="job-issue_campaign_bonuses" data-state="succeeded"' in page
    assert "3</strong> open" in page  # quarantine
    earn = client.get(
        "/admin/support/dashboard/",
        {"subject": "earn", "first": "2026-11-20", "last": "2026-11-21"},
    )
    charts = _charts(earn.content.decode())["charts"]
    assert [c["key"] for c in charts] == [  # type: ignore[attr-defined]
        "activations",
        "interest",
        "funding-USDC",
        "funding-USDT",
    ]


def test_a_bad_range_is_refused_with_a_message(winter: Campaign) -> None:
    client = _staff("operator")
    page = client.get(
        "/admin/support/dashboard/",
        {"subject": "earn", "first": "2026-11-21", "last": "2026-11-20"},
    ).content.decode()
    assert "the range ends before it starts" in page
    assert 'id="dashboard-charts"' not in page
    wide = client.get(
        "/admin/support/dashboard/",
        {"subject": "earn", "first": "2024-01-01", "last": "2026-01-01"},
    ).content.decode()
    assert "a range spans at most 366 days" in wide
