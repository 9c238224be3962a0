"""The ops pages in a real browser: Playwright driving Debian's Chromium.

An operator logs in, creates a campaign with the admin form, uploads its
invitation list as a CSV, and, once the campaign and the other programs have
run (services and jobs at frozen instants, as in world.py), reads its charts
on the dashboard and a participant's support view; on every page it visits,
and on the admin lists of every program, no amount shows more than 8 decimal
places or an exponent. The API docs (Swagger UI and Redoc) list every
operation of the schema with the network beyond the test server cut off.
Screenshots of each page are saved under the test's tmp_path (``screenshots/``).

No browser is downloaded: Chromium comes from Debian (``./bin/bootstrap``
installs it as root). Without it the test fails and says so; it never skips.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign
from tests.support import world

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "a-long-password-for-ops-1"
# As root in a sandbox without a network: no sandbox, no GPU, none of the
# background connections Chromium makes on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser test needs Debian's Chromium at {CHROMIUM}: run ./bin/bootstrap as root"
            " (it installs the package chromium with apt-get), or apt-get install chromium"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: ./bin/bootstrap installs requirements.lock")
    # Playwright's sync API keeps an event loop on this thread; Django's guard
    # against the ORM inside a running loop would refuse this test's own
    # (synchronous, single-threaded) setup between two page actions.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # Inside the running loop Django keeps its connections per context,
            # not per thread: close the test's own here, or it would outlive
            # the test database.
            connections.close_all()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"screenshots: {folder}")
    return folder


@pytest.fixture
def page(browser: Any, shots: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A browser tab; if the test fails, its last state is kept as failure.png."""
    tab = browser.new_page(viewport={"width": 1440, "height": 1000})
    tab.set_default_timeout(20_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        tab.screenshot(path=str(shots / "failure.png"), full_page=True)
    tab.close()


def _operator() -> None:
    user = User.objects.create_user("ops-browser", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))


def _datasets(page: Any, key: str) -> dict[str, list[float]]:
    """What Chart.js itself holds for a chart: label -> data per day."""
    found: dict[str, list[float]] = page.evaluate(
        """key => Object.fromEntries(
            Chart.getChart('chart-' + key).data.datasets.map(d => [d.label, d.data]))""",
        key,
    )
    return found


def _on(days: list[str], values: list[float]) -> dict[str, float]:
    return {day: value for day, value in zip(days, values, strict=True) if value}


# How an amount must never read to a person: more than the payout's 8 decimal
# places (a NUMERIC(38,18) shown as stored: "100000.000000000000000000") or
# an exponent ("0E-18").
TOO_PRECISE = re.compile(r"\d\.\d{9,}")
EXPONENT = re.compile(r"\dE[-+]?\d")


def _unreadable_amounts(page: Any) -> list[str]:
    """What the page shows (its rendered text, not its markup or scripts) that
    reads as an amount with too many places or an exponent."""
    text: str = page.inner_text("body")
    return sorted({m.group(0) for rx in (TOO_PRECISE, EXPONENT) for m in rx.finditer(text)})


def _program_lists() -> list[str]:
    """The admin lists of every program's tables, the funding accounts and the job runs."""
    apps = {"campaigns", "vouchers", "referrals", "earn"}
    found = sorted(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label in apps
    )
    return [
        *found,
        reverse("admin:ledger_account_changelist") + "?kind__exact=funding",
        reverse("admin:jobs_jobrun_changelist"),
    ]


def _fits(page: Any, selector: str) -> bool:
    """Whether a scrolling box shows all its content without scrolling sideways."""
    scroll, client = page.evaluate(
        "s => { const box = document.querySelector(s); return [box.scrollWidth, box.clientWidth] }",
        selector,
    )
    assert scroll <= client, f"{selector} is {scroll} px wide in {client} px"
    return True


def _offline(page: Any, base: str) -> list[str]:
    """Abort every request for a host other than the test server's; returns
    the list the refused URLs are added to."""
    host = urlsplit(base).netloc
    refused: list[str] = []

    def route(found: Any) -> None:
        url = found.request.url
        if urlsplit(url).netloc == host:
            found.continue_()
        else:
            refused.append(url)
            found.abort("internetdisconnected")

    page.route("**/*", route)
    return refused


def test_an_operator_runs_a_campaign_and_reads_its_pages(
    live_server: Any, page: Any, shots: Path, clock: world.Clock, tmp_path: Path
) -> None:
    clock(world.START)
    world.users()
    world.pools()
    _operator()
    base = live_server.url

    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops-browser")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")

    # A campaign, through the admin form.
    page.goto(f"{base}/admin/campaigns/campaign/add/")
    page.fill("#id_slug", "spring")
    page.fill("#id_title", "Spring loss coverage")
    for name, day in (
        ("starts_at", "2026-11-01"),
        ("ends_at", "2026-11-15"),
        ("registration_opens_at", "2026-10-25"),
        ("registration_closes_at", "2026-11-10"),
    ):
        page.fill(f"#id_{name}_0", day)
        page.fill(f"#id_{name}_1", "00:00:00")
    page.fill("#id_volume_target", "1000")
    page.fill("#id_card_table", '[{"percent": "8", "weight": 1}]')
    page.fill("#id_prize_table", '[{"amount": "7", "weight": 1}]')
    page.fill("#id_funding_program", "campaign:spring")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist li.success")
    spring = Campaign.objects.get(slug="spring")
    assert (spring.volume_target, spring.card_table) == (1000, [{"percent": "8", "weight": 1}])
    # Funding is finance's action (its own permission): done here through the ledger.
    world.fund("campaign:spring", "USDT", "100000")

    # Its invitation list, uploaded as a CSV.
    invitations = tmp_path / "invitations.csv"
    with invitations.open("w", newline="") as out:
        csv.writer(out).writerows(
            [["user_id", "name"], ["u_1", "Ann"], ["u_2", "Bo"], ["u_1", "Ann"]]
        )
    page.goto(f"{base}/admin/campaigns/invitation/upload/")
    page.select_option("#id_campaign", label="spring")
    page.set_input_files("#id_file", str(invitations))
    page.click("input[type=submit][value=Upload]")
    assert "2 new invitations of 3 rows." in page.inner_text("ul.messagelist")
    page.screenshot(path=str(shots / "1-invitations.png"), full_page=True)

    world.campaign_life(spring, clock)
    world.programs_life(clock)
    # Whatever a person reads on a page must be readable: checked on each one.
    unreadable: dict[str, list[str]] = {}

    # The dashboard: Chart.js draws every chart with the campaign's numbers.
    page.goto(
        f"{base}/admin/support/dashboard/?subject=campaign:spring&first=2026-10-20&last=2026-11-20"
    )
    page.wait_for_function("() => document.body.dataset.chartsDrawn === '6'")
    assert page.locator("canvas").count() == 6
    days: list[str] = page.evaluate("() => Chart.getChart('chart-volume').data.labels")
    assert (days[0], days[-1], len(days)) == ("2026-10-20", "2026-11-20", 32)
    people = _datasets(page, "registrations")
    assert _on(days, people["invited"]) == {"2026-10-20": 2}
    assert _on(days, people["registered"]) == {"2026-11-02": 2}
    volume = _datasets(page, "volume")["valid futures volume"]
    assert _on(days, volume) == {"2026-11-03": 3300, "2026-11-04": 50}
    spins = _datasets(page, "spins")
    assert (_on(days, spins["coverage spins"]), _on(days, spins["daily spins"])) == (
        {"2026-11-05": 1},
        {"2026-11-05": 2},
    )
    assert _on(days, _datasets(page, "cards")["8% card"]) == {"2026-11-05": 1}
    rewards = _datasets(page, "rewards")
    assert _on(days, rewards["coverage rebates earned"]) == {"2026-11-15": 20}
    assert _on(days, rewards["daily prizes won"]) == {"2026-11-05": 14}
    assert _on(days, rewards["bonuses issued"]) == {"2026-11-16": 27}
    funding = _datasets(page, "funding-USDT")
    assert set(funding["budget (funded to date)"]) == {100000}
    assert _on(days, funding["used to date"]) == {day: 27 for day in days if day >= "2026-11-16"}
    # The jobs table fits the page at 1,440 pixels, counts and all.
    assert _fits(page, "#job-health .support-scroll")
    health = page.locator("#job-issue_campaign_bonuses")
    assert health.get_attribute("data-state") == "succeeded"
    assert "rewards_issued 2" in health.inner_text()
    # The payout queue: the campaign's two credits (11-16 09:30) and the
    # programs' four (11-21), none acknowledged; as of 11-21 03:00.
    queue = page.locator("#payout-queue")
    assert queue.get_attribute("data-unacknowledged") == "6"
    assert "waiting 4 d 17 h" in queue.inner_text()
    unreadable["dashboard"] = _unreadable_amounts(page)
    page.screenshot(path=str(shots / "2-dashboard.png"), full_page=True)

    # The support view, from the search box of the admin index.
    page.goto(f"{base}/admin/")
    page.fill("#support-user-id", "u_1")
    page.click("#support-search input[type=submit]")
    page.wait_for_url(f"{base}/admin/support/users/u_1/")
    assert page.inner_text("[data-fact=account_type]") == "main"
    joined = page.inner_text("#section-participations")
    assert "spring" in joined and "8%" in joined and "1 of 13 orders covered" in joined
    assert page.get_attribute("#section-campaign_rewards", "data-total") == "2"
    credits = page.inner_text("#section-credits")
    assert "campaign.coverage_rebate" in credits and "campaign.daily_prize" in credits
    assert '"campaign": "spring"' in credits  # each credit with its cause
    unreadable["support u_1"] = _unreadable_amounts(page)
    page.screenshot(path=str(shots / "3-support-u_1.png"), full_page=True)
    # A disqualified participant: the prize is void, and why.
    page.goto(f"{base}/admin/support/users/u_2/")
    assert "disqualify_campaigns" in page.inner_text("#section-risk_measures")
    assert "void" in page.inner_text("#section-campaign_rewards")
    unreadable["support u_2"] = _unreadable_amounts(page)
    page.screenshot(path=str(shots / "4-support-u_2.png"), full_page=True)

    # The admin lists of the programs, the funding accounts and the job runs.
    lists = _program_lists()
    assert len(lists) >= 8
    for path in lists:
        page.goto(f"{base}{path}")
        assert page.locator("#changelist").count() == 1, path
        unreadable[path] = _unreadable_amounts(page)
    # The job runs' counts wrap in their column: the list fits the window.
    page.goto(f"{base}/admin/jobs/jobrun/")
    assert _fits(page, "#changelist .results")
    assert "distribute_earn_interest" in page.inner_text("#result_list")
    page.screenshot(path=str(shots / "5-job-runs.png"), full_page=True)
    assert {page: found for page, found in unreadable.items() if found} == {}
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-invitations.png",
        "2-dashboard.png",
        "3-support-u_1.png",
        "4-support-u_2.png",
        "5-job-runs.png",
    ]


def _operations() -> set[tuple[str, str]]:
    """Every (METHOD, path) of the live schema."""
    schema = json.loads(Client().get("/api/schema/", {"format": "json"}).content)
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    }


def test_the_api_docs_list_every_operation_offline(
    live_server: Any, page: Any, shots: Path
) -> None:
    base = live_server.url
    expected = _operations()
    assert ("GET", "/api/v1/payouts") in expected and len(expected) >= 20
    refused = _offline(page, base)

    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".opblock-summary-path", state="attached")
    shown = page.evaluate(
        """() => [...document.querySelectorAll('.opblock')].map(block => [
            block.querySelector('.opblock-summary-method').textContent.trim(),
            block.querySelector('.opblock-summary-path').dataset.path])"""
    )
    assert {(method, path) for method, path in shown} == expected
    assert len(shown) == len(expected)
    page.screenshot(path=str(shots / "api-docs.png"), full_page=True)

    # Swagger UI asks nothing of any other host.
    assert refused == []
    page.goto(f"{base}/api/redoc/")
    page.wait_for_selector("[data-section-id^='operation/']", state="attached")
    sections = page.evaluate(
        "() => document.querySelectorAll(\"[data-section-id^='operation/']\").length"
    )
    assert sections == len(expected)
    page.screenshot(path=str(shots / "api-redoc.png"), full_page=False)
    # Everything came from the test server: Redoc's "powered by" badge, an image
    # on its CDN, is held back by the page's own policy (templates/drf_spectacular).
    assert refused == []
