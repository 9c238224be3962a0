"""Campaigns as code (apply_config), invitation lists, and the ops screens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import formats

from campaigns import rules, services
from campaigns.jobs import refresh_spins
from campaigns.models import Campaign, Invitation
from ledger.configuration import ConfigError, apply_config
from ledger.ingestion import ingest
from ledger.models import Account
from tests import events

Clock = Callable[[str], dt.datetime]

CONFIG = """
funding_accounts:
  - program: "campaign:spring"
    asset: USDT
    top_ups: [{key: spring-1, amount: "25000"}]
campaigns:
  - slug: spring
    title: Spring loss coverage
    starts_at: "2027-03-01T00:00:00Z"
    ends_at: "2027-03-15T00:00:00Z"
    volume_target: "5000"
    cards: [{percent: "3", weight: 6}, {percent: "5", weight: 3}, {percent: "8", weight: 1}]
    lateness_minutes: 90
    invitations: [u_1, u_2, u_2]
"""


def test_apply_config_creates_then_changes_nothing(db: None, clock: Clock, tmp_path: Path) -> None:
    lines = apply_config(yaml.safe_load(CONFIG), by="ops")
    spring = Campaign.objects.get(slug="spring")
    assert spring.seed_hash == rules.seed_hash(spring.seed)
    assert (spring.volume_target, spring.lateness) == (Decimal(5000), dt.timedelta(minutes=90))
    assert spring.registration_opens_at == spring.starts_at  # defaults to the campaign window
    assert spring.card_table == [
        {"percent": "3", "weight": 6},
        {"percent": "5", "weight": 3},
        {"percent": "8", "weight": 1},
    ]
    assert "  invitations: 2 new of 3" in lines
    assert Account.objects.get(code="funding:campaign:spring:USDT").balance == Decimal(25000)
    again = apply_config(yaml.safe_load(CONFIG), by="ops")
    assert "campaign spring: unchanged" in again and "  invitations: 0 new of 3" in again
    assert Campaign.objects.get(slug="spring").seed == spring.seed


def test_rules_are_frozen_once_the_campaign_starts(db: None, clock: Clock) -> None:
    apply_config(yaml.safe_load(CONFIG), by="ops")
    clock("2027-03-02T00:00:00Z")
    changed = yaml.safe_load(CONFIG.replace('volume_target: "5000"', 'volume_target: "1"'))
    with pytest.raises(ConfigError, match="rules are frozen: volume_target"):
        apply_config(changed, by="ops")


def test_bad_campaign_config_names_the_field(db: None, clock: Clock) -> None:
    untitled = CONFIG.replace("    title: Spring loss coverage\n", "")
    with pytest.raises(ConfigError, match=r"campaigns\[0\]: a new campaign needs title"):
        apply_config(yaml.safe_load(untitled), by="ops")
    prizes = CONFIG.replace(
        "    lateness_minutes: 90\n",
        '    lateness_minutes: 90\n    prizes: [{amount: "150", weight: 1}]\n',
    )
    with pytest.raises(ConfigError, match="every prize is between 1 and 100"):
        apply_config(yaml.safe_load(prizes), by="ops")
    floats = CONFIG.replace('volume_target: "5000"', "volume_target: 5000.5")
    with pytest.raises(
        ConfigError, match=r"campaigns\[0\].volume_target: write amounts as strings"
    ):
        apply_config(yaml.safe_load(floats), by="ops")
    assert not Campaign.objects.exists()


def test_invitations_from_csv_with_or_without_header(db: None, clock: Clock) -> None:
    from tests.campaigns.conftest import make_campaign

    campaign = make_campaign(funding="0")
    assert list(services.invitation_ids_from_csv("user_id,name\nu_1,Ann\nu_2,Bo\n")) == [
        "u_1",
        "u_2",
    ]
    assert list(services.invitation_ids_from_csv("u_3\nu_4\n\n")) == ["u_3", "u_4"]
    ids = [f"u_{n:06d}" for n in range(20_000)]
    assert services.invite(campaign, ids, source="csv") == 20_000
    assert services.invite(campaign, [*ids[:10], "u_new"], source="csv") == 1
    assert Invitation.objects.filter(campaign=campaign).count() == 20_001


def test_an_operator_uploads_invitations_and_sees_the_budget(db: None, clock: Clock) -> None:
    from tests.campaigns.conftest import make_campaign

    campaign = make_campaign()
    user = User.objects.create_user("ops-1", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)
    upload = SimpleUploadedFile("vip.csv", b"user_id\nu_1\nu_2\nu_1\n", content_type="text/csv")
    response = client.post(
        "/admin/campaigns/invitation/upload/", {"campaign": campaign.pk, "file": upload}
    )
    assert response.status_code == 302
    assert sorted(Invitation.objects.values_list("user_id", flat=True)) == ["u_1", "u_2"]
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    assert b"funded 100,000 USDT;" in page.content
    for screen in ("participant", "dailyspin", "coveragedraw", "reward", "invitation"):
        assert client.get(f"/admin/campaigns/{screen}/").status_code == 200


def _cell(page: bytes, column: str) -> str:
    """The text of the one cell of ``column`` on a change list (one row shown)."""
    [cell] = re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', page.decode())
    return str(cell)


def test_amounts_read_as_people_read_them_in_refusals_and_on_the_screens(
    db: None, clock: Clock
) -> None:
    from tests.campaigns.conftest import instant, known_users, make_campaign

    big = make_campaign(slug="big", funding="200000", volume_target=Decimal("5000"))
    known_users(("u_1", "main"))
    services.invite(big, ["u_1"], source="test")
    clock("2026-11-02T00:00:00Z")
    services.register(big, "u_1")
    with pytest.raises(services.CampaignRefusal) as refused:
        services.spin(big, "u_1", "coverage")
    assert refused.value.message == (
        "no coverage spin yet: reach 5,000 USDT of valid volume"
        " (spins are refreshed every 5 minutes)"
    )
    # 12.5 of valid volume on the 3rd: one daily spin (at least 10), which wins 7.
    ingest(
        [events.fill("u_1", order_id="o1", notional="12.5", occurred_at="2026-11-03T10:00:00Z")],
        source="test",
    )
    refresh_spins(at=instant("2026-11-04T00:05:00Z"))
    clock("2026-11-04T00:10:00Z")
    assert services.spin(big, "u_1", "daily").amount == Decimal(7)
    with pytest.raises(services.CampaignRefusal) as refused:
        services.spin(big, "u_1", "daily")
    assert refused.value.message == (
        "no daily spin left: trade at least 10 USDT of valid volume on a day to earn one"
    )
    quiet = make_campaign(slug="quiet", funding="0")
    services.record_budget_alert(quiet.pk, "campaign quiet: a daily prize of 7 USDT ...")

    viewer = User.objects.create_user("viewer-1", password="a-long-password-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/admin/campaigns/campaign/{big.pk}/change/").content.decode()
    assert (
        '<div class="readonly">funded 200,000 USDT; issued 0 USDT; left 200,000 USDT;'
        " daily prizes won 7 USDT; coverage rebates drawn 0 USDT</div>"
    ) in page
    # The budget alert column: the admin's dash without an alert, its time with one.
    assert _cell(client.get("/admin/campaigns/campaign/", {"q": "big"}).content, "alert") == "-"
    alerted = _cell(client.get("/admin/campaigns/campaign/", {"q": "quiet"}).content, "alert")
    assert alerted == formats.localize(instant("2026-11-04T00:10:00Z"))
    participants = client.get("/admin/campaigns/participant/", {"q": "u_1"}).content
    assert _cell(participants, "valid_volume") == "12.5"
    assert _cell(client.get("/admin/campaigns/dailyspin/").content, "amount") == "7"


def test_rule_amounts_are_typed_and_read_without_the_columns_trailing_zeros(
    db: None, clock: Clock
) -> None:
    from tests.campaigns.conftest import make_campaign

    campaign = make_campaign(volume_target=Decimal("5000"))
    client = Client()
    client.force_login(User.objects.create_superuser("root-1", password="a-long-password-1"))
    page = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    # Before the start the rules are inputs, holding the amounts as written.
    clock("2026-10-26T00:00:00Z")
    editable = client.get(page).content.decode()
    assert re.search(r'name="volume_target"[^>]*value="5000"', editable)
    assert re.search(r'name="cap_per_order"[^>]*value="500"', editable)
    assert "5000.000000000000000000" not in editable
    # Once it runs they are frozen, and read as people read amounts.
    clock("2026-11-02T00:00:00Z")
    frozen = client.get(page).content.decode()
    assert 'name="volume_target"' not in frozen
    assert re.search(r'<div class="readonly">5,000</div>', frozen)
    assert re.search(r'<div class="readonly">500</div>', frozen)
    assert not re.search(r"\d\.\d{9,}", frozen)
