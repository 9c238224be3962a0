"""The admin pages: who may open them, and what they show."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from campaigns.models import Campaign
from ledger.models import PayoutDigest


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


@pytest.mark.django_db
def test_the_landing_page_lists_where_everything_is() -> None:
    page = Client().get("/")
    assert page.status_code == 200
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', page.content.decode())
    assert links == [
        ("/admin/", "Admin"),
        ("/admin/support/dashboard/", "Ops dashboard"),
        ("/admin/support/users/", "Support view"),
        ("/api/docs/", "API docs (Swagger UI)"),
        ("/api/redoc/", "API reference (Redoc)"),
        ("/api/schema/", "OpenAPI schema"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
        ("/metrics", "/metrics"),
    ]
    # The admin's "View site" leads there.
    index = _staff("viewer").get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in index


def test_the_dashboard_shows_the_payout_queue_and_amounts_for_people(winter: Campaign) -> None:
    page = _staff("viewer").get("/admin/support/dashboard/").content.decode()
    queue = re.search(r'<td id="payout-queue"(.*?)</td>', page, re.S)
    assert queue is not None
    text = " ".join(re.sub(r"<[^>]+>", "", queue.group(0)).split())
    text = re.sub(r"#\d+", "#N", text)  # ids come from a sequence
    # Six credits since 11-16 09:30, none acknowledged (test_health.py): 4 d 17 h.
    assert text == (
        "6 payout instructions not acknowledged by the wallet service (oldest #N, created"
        " 2026-11-16 09:30:00 UTC: waiting 4 d 17 h); 6 not relayed to the payout stream yet"
    )
    assert 'data-unacknowledged="6"' in queue.group(0)
    assert 'data-oldest-age-seconds="408600.0"' in queue.group(0)
    # Figures for people: grouped digits and the asset.
    assert "<td>99,973 USDT</td>" in page and "<td>100,000 USDT</td>" in page
    # One spelling of instants, with seconds and the zone.
    assert "as of 2026-11-21 03:00:00 UTC" in page


def test_admin_pages_spell_times_in_one_format(winter: Campaign) -> None:
    client = _staff("viewer")
    runs = client.get("/admin/jobs/jobrun/").content.decode()
    # The newest run: distribute_referral_commissions at 11-21 01:00.
    assert '<td class="field-started_at nowrap">2026-11-21 01:00:00 UTC</td>' in runs
    assert " a.m." not in runs and " p.m." not in runs
    # Durations have their unit; counts are one pair per line, amounts for people.
    assert '<td class="field-duration_shown">0.000 s</td>' in runs
    # (PostgreSQL's jsonb keeps keys shortest first.) The issuance names its digest.
    issued = PayoutDigest.objects.get(funding_account="funding:campaign:winter:USDT")
    assert (
        '<td class="field-counts_shown">amount: 27'
        f"<br>digest #{issued.pk}: {issued.digest}<br>rewards_issued: 2</td>"
    ) in runs
    assert "<br>interest_USDT: 10.2739726</td>" in runs
    campaign = client.get(f"/admin/campaigns/campaign/{winter.pk}/change/").content.decode()
    assert "2026-10-25" in campaign and "Oct. 25" not in campaign
