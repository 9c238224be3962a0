"""Every admin screen, its list, a row's page and the row's history, reads
amounts as people read them: at most 8 decimal places, never an exponent
(ledger.money.for_people). The browser test checks the lists it visits; this
walks every registered model, on the world of tests/support/world.py."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign

# An amount of more than 8 places, or in an exponent (0E-18, 1E+3).
TOO_PRECISE = re.compile(r"\d\.\d{9,}|\dE[-+]\d")
# What a person reads: the page's text, without scripts, styles and tags.
HIDDEN = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.DOTALL)


def _text(html: str) -> str:
    return HIDDEN.sub(" ", html)


@pytest.mark.django_db
def test_no_admin_page_shows_an_amount_beyond_its_places(winter: Campaign) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root-amounts", password="pw-amounts-1"))
    pages = 0
    offending: list[str] = []
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        urls = [changelist]
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            urls += [
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk]),
                reverse(f"admin:{meta.app_label}_{meta.model_name}_history", args=[row.pk]),
            ]
        for url in urls:
            answer = client.get(url)
            assert answer.status_code == 200, url
            pages += 1
            found = TOO_PRECISE.findall(_text(answer.content.decode()))
            if found:
                offending.append(f"{url}: {found[:3]}")
    assert offending == []
    assert pages > 100  # every screen, not a few
