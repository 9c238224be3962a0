"""Ops grant vouchers in the admin and read programs, vouchers and compensations."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from vouchers.models import Voucher, VoucherProgram


def _operator() -> Client:
    user = User.objects.create_user("ops-2", password="a-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_grants_one_voucher_and_a_csv(program: Any, clock: Any) -> None:
    client = _operator()
    welcome = VoucherProgram.objects.get(slug="welcome")
    one = client.post(
        "/admin/vouchers/voucher/grant/",
        {"program": welcome.pk, "template": "fifty", "user_id": "u_1"},
    )
    assert one.status_code == 302
    upload = SimpleUploadedFile(
        "grants.csv", b"user_id,template\nu_1,thirty\nu_2,fifty\n", content_type="text/csv"
    )
    assert (
        client.post(
            "/admin/vouchers/voucher/grant/", {"program": welcome.pk, "file": upload}
        ).status_code
        == 302
    )
    again = SimpleUploadedFile(
        "grants.csv", b"user_id,template\nu_1,thirty\nu_2,fifty\n", content_type="text/csv"
    )
    client.post("/admin/vouchers/voucher/grant/", {"program": welcome.pk, "file": again})
    assert sorted(Voucher.objects.values_list("user_id", "template__code")) == [
        ("u_1", "fifty"),
        ("u_1", "thirty"),
        ("u_2", "fifty"),
    ]
    assert {v.source for v in Voucher.objects.all()} == {"ops: ops-2", "csv by ops-2"}
    page = client.get(f"/admin/vouchers/voucherprogram/{welcome.pk}/change/")
    assert page.status_code == 200
    assert (
        '<div class="readonly">left 10,000 USDT; paid 0 USDT; owed (unpaid) 0 USDT</div>'
        in page.content.decode()
    )
    # Face values in the list as people read them: 50, not 50.000000000000000000.
    listed = client.get("/admin/vouchers/voucher/", {"q": "u_2"}).content.decode()
    assert '<td class="field-face_value">50</td><td class="field-remaining">50</td>' in listed
    for screen in ("voucher", "consumption", "voucherprogram"):
        assert client.get(f"/admin/vouchers/{screen}/").status_code == 200


def test_the_grant_button_is_offered_only_to_who_may_grant(program: Any) -> None:
    viewer = User.objects.create_user("viewer-2", password="a-long-password-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    reader = Client()
    reader.force_login(viewer)
    assert "Grant vouchers" not in reader.get("/admin/vouchers/voucher/").content.decode()
    assert reader.get("/admin/vouchers/voucher/grant/").status_code == 403
    assert "Grant vouchers" in _operator().get("/admin/vouchers/voucher/").content.decode()
