"""Writes of the vouchers app: programs, templates, grants, risk voiding.

Consumption and payout are the jobs' (``vouchers/jobs.py``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from access.bodies import UNKNOWN
from access.errors import DomainError
from access.middleware import text_problem, user_id_problem
from config import clock
from ledger.bookkeeping import open_funding_account
from ledger.event_store import DomainEvent, append_domain_events
from ledger.money import format_amount
from ledger.wire import printable
from vouchers import rules
from vouchers.models import VoucherProgram, VoucherTemplate

logger = logging.getLogger(__name__)

EVENT_CHUNK = 5_000
GRANT_KEY_MAX = 200
VOID_MEASURE = "void_vouchers"


class VoucherRefusal(DomainError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# --- programs and templates ----------------------------------------------------------


@transaction.atomic
def save_program(
    *, slug: str, title: str, asset: str = "USDT", funding_program: str = ""
) -> VoucherProgram:
    program, created = VoucherProgram.objects.get_or_create(
        slug=slug,
        defaults={
            "title": title,
            "asset": asset,
            "funding_program": funding_program or f"vouchers:{slug}",
            "created_at": clock.now(),
        },
    )
    if not created:
        program.title = title
        program.save(update_fields=["title"])
    open_funding_account(program=program.funding_program, asset=program.asset)
    return program


def save_template(
    *,
    program: VoucherProgram,
    code: str,
    face_value: Decimal,
    validity_days: int | None = None,
    valid_until: dt.datetime | None = None,
    min_closing_amount: Decimal | None = None,
) -> VoucherTemplate:
    """Create or change a template. Vouchers already granted keep their terms."""
    if face_value <= 0:
        raise ValueError("face_value: must be > 0")
    if validity_days is None and valid_until is None:
        raise ValueError("a template needs validity_days or valid_until")
    template, _ = VoucherTemplate.objects.update_or_create(
        program=program,
        code=code,
        defaults={
            "face_value": face_value,
            "validity_days": validity_days,
            "valid_until": valid_until,
            "min_closing_amount": min_closing_amount,
        },
    )
    return template


# --- grants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One voucher to give: ``key`` makes giving it again a no-op."""

    key: str
    user_id: str
    program: str
    template: str
    # Fields the request named beside these (the API's body is closed): each refuses it.
    unknown: tuple[str, ...] = ()


@dataclass
class GrantReport:
    granted: int = 0
    duplicate: int = 0
    rejected: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)


def grant_vouchers(grants: Iterable[Grant], *, source: str) -> GrantReport:
    """Give vouchers, set-based (COPY, one INSERT ... ON CONFLICT): arrival is
    now; expiry from the template. Each new voucher is also a ``voucher.granted``
    event. A grant whose key was used before is a duplicate and changes nothing."""
    now = clock.now()
    report = GrantReport()
    templates = {
        (t.program.slug, t.code): t for t in VoucherTemplate.objects.select_related("program")
    }
    rows: list[tuple[str, str, int, int, Decimal, Decimal | None, dt.datetime]] = []
    index_of: dict[str, int] = {}
    for index, grant in enumerate(grants):
        template = templates.get((grant.program, grant.template))
        errors = [{"field": name, "message": UNKNOWN} for name in grant.unknown]
        # Both are stored as text and written to COPY: NUL or a lone surrogate
        # would fail there for the whole batch, so the grant is refused alone.
        key_problem = text_problem(grant.key, max_length=GRANT_KEY_MAX, min_length=1)
        if key_problem is not None:
            errors.append({"field": "idempotency_key", "message": key_problem})
        user_problem = user_id_problem(grant.user_id)
        if user_problem is not None:
            errors.append({"field": "user_id", "message": user_problem})
        if template is None:
            errors.append(
                {
                    "field": "template",
                    "message": f"no template {grant.template!r} in program {grant.program!r}",
                }
            )
        if errors or template is None:
            report.rejected += 1
            report.results.append(
                {
                    "index": index,
                    # A key at fault is echoed escaped: an answer cannot hold a lone surrogate.
                    "idempotency_key": grant.key if key_problem is None else printable(grant.key),
                    "status": "rejected",
                    "errors": errors,
                }
            )
            continue
        if grant.key in index_of:
            report.duplicate += 1
            report.results.append(
                {"index": index, "idempotency_key": grant.key, "status": "duplicate"}
            )
            continue
        index_of[grant.key] = index
        expires = rules.expires_at(
            now, validity_days=template.validity_days, valid_until=template.valid_until
        )
        rows.append(
            (
                grant.key,
                grant.user_id,
                template.pk,
                template.program_id,
                template.face_value,
                template.min_closing_amount,
                expires,
            )
        )
        report.results.append({"index": index, "idempotency_key": grant.key, "status": "pending"})
    if not rows:
        return report
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS voucher_grant_upload (grant_key text, user_id text,"
                " template_id bigint, program_id bigint, face_value numeric, min_closing_amount numeric,"
                " expires_at timestamptz) ON COMMIT DROP"
            )
            cursor.execute("TRUNCATE voucher_grant_upload")
        raw = connection.connection
        assert raw is not None
        with (
            raw.cursor() as copy_cursor,
            copy_cursor.copy("COPY voucher_grant_upload FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO vouchers_voucher (grant_key, user_id, template_id, program_id, face_value,
                    remaining, min_closing_amount, arrived_at, expires_at, source)
                SELECT grant_key, user_id, template_id, program_id, face_value, face_value,
                    min_closing_amount, %s, expires_at, %s
                FROM voucher_grant_upload
                ON CONFLICT (grant_key) DO NOTHING
                RETURNING id, grant_key, user_id, program_id, template_id, face_value, expires_at
                """,
                [now, source[:120]],
            )
            created = cursor.fetchall()
        programs = dict(VoucherProgram.objects.values_list("pk", "slug"))
        codes = {t.pk: t.code for t in templates.values()}
        created_keys = {}
        events = []
        for voucher_id, key, user_id, program_id, template_id, face_value, expires in created:
            created_keys[key] = voucher_id
            events.append(
                DomainEvent(
                    event_id=f"voucher.granted:{key}",
                    type="voucher.granted",
                    occurred_at=now,
                    user_id=user_id,
                    data={
                        "voucher_id": voucher_id,
                        "program": programs[program_id],
                        "template": codes[template_id],
                        "face_value": format_amount(face_value),
                        "expires_at": expires.isoformat(),
                        "source": source,
                    },
                )
            )
        for start in range(0, len(events), EVENT_CHUNK):
            append_domain_events(events[start : start + EVENT_CHUNK])
    for result in report.results:
        if result["status"] != "pending":
            continue
        voucher_id = created_keys.get(result["idempotency_key"])
        if voucher_id is None:
            result["status"] = "duplicate"
            report.duplicate += 1
        else:
            result["status"] = "granted"
            result["voucher_id"] = voucher_id
            report.granted += 1
    return report


def grants_from_csv(text: str, *, program: str, default_template: str = "") -> list[Grant]:
    """Grants from a CSV with a header: ``user_id`` (required), ``template``
    (or the default) and optionally ``idempotency_key``. Without a key, a row's
    key is the file's SHA-256 and the line number: uploading the same file
    again grants nothing new."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "user_id" not in [name.strip() for name in reader.fieldnames]:
        raise ValueError("the CSV needs a header with a user_id column")
    grants = []
    for line, row in enumerate(reader, start=2):
        row = {key.strip(): (value or "").strip() for key, value in row.items() if key}
        if not row.get("user_id"):
            continue
        template = row.get("template") or default_template
        if not template:
            raise ValueError(f"line {line}: no template (add a template column or choose one)")
        key = row.get("idempotency_key") or f"csv:{digest}:{line}"
        grants.append(Grant(key=key, user_id=row["user_id"], program=program, template=template))
    return grants


# --- risk ------------------------------------------------------------------------------


def void_for_risk(at: dt.datetime) -> dict[str, int]:
    """RULES.md section 2, ``void_vouchers``: for every user under the measure,
    void the active vouchers and cancel the unpaid compensation; one
    ``voucher.voided`` event per user. Idempotent."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH flagged AS (SELECT DISTINCT user_id FROM ledger_riskmeasure WHERE measure = %s),
            voided AS (
                UPDATE vouchers_voucher v SET voided_at = %s
                FROM flagged f
                WHERE v.user_id = f.user_id AND v.voided_at IS NULL AND v.remaining > 0
                  AND v.expires_at > %s
                RETURNING v.user_id, v.id
            ),
            cancelled AS (
                UPDATE vouchers_consumption c SET cancelled_at = %s
                FROM flagged f
                WHERE c.user_id = f.user_id AND c.paid_at IS NULL AND c.cancelled_at IS NULL
                RETURNING c.user_id, c.id, c.amount
            )
            SELECT user_id, array_agg(DISTINCT voucher_id) FILTER (WHERE voucher_id IS NOT NULL),
                array_agg(DISTINCT consumption_id) FILTER (WHERE consumption_id IS NOT NULL),
                coalesce(sum(amount), 0)
            FROM (
                SELECT user_id, id AS voucher_id, NULL::bigint AS consumption_id, 0::numeric AS amount FROM voided
                UNION ALL
                SELECT user_id, NULL, id, amount FROM cancelled
            ) changes
            GROUP BY user_id ORDER BY user_id
            """,
            [VOID_MEASURE, at, at, at],
        )
        rows = cursor.fetchall()
        events = [
            DomainEvent(
                event_id=f"voucher.voided:{user_id}:{at.isoformat()}",
                type="voucher.voided",
                occurred_at=at,
                user_id=user_id,
                data={
                    "reason": VOID_MEASURE,
                    "vouchers": sorted(vouchers or []),
                    "cancelled_consumptions": sorted(consumptions or []),
                    "cancelled_amount": format_amount(amount),
                },
            )
            for user_id, vouchers, consumptions, amount in rows
        ]
        for start in range(0, len(events), EVENT_CHUNK):
            append_domain_events(events[start : start + EVENT_CHUNK])
    return {"users_voided": len(rows)}
