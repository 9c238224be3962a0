"""How replay rebuilds the vouchers (replay.registry): grants are given again;
consumption, compensation, expiry and voids are decided again by the jobs."""

from __future__ import annotations

from replay import registry
from replay.rebuild import align_ids
from replay.registry import RecordedEvent
from vouchers import services
from vouchers.matching import CHANGED
from vouchers.models import VoucherTemplate


def _template(event: RecordedEvent) -> str:
    code = event.data.get("template")
    if code:
        return str(code)
    # Grants recorded before the event named its template: a program's only one.
    codes = list(
        VoucherTemplate.objects.filter(program__slug=event.data["program"]).values_list(
            "code", flat=True
        )
    )
    if len(codes) != 1:
        raise registry.Unreplayable(
            f"{event.event_id} does not name its template and its program has {len(codes)}"
        )
    return codes[0]


def _grant(batch: list[RecordedEvent]) -> None:
    # One grant request gave consecutive ids unless a key in it was taken
    # already: each run of consecutive ids is given again as one request.
    run: list[RecordedEvent] = []
    for event in batch:
        if run and event.data["voucher_id"] != run[-1].data["voucher_id"] + 1:
            _grant_run(run)
            run = []
        run.append(event)
    if run:
        _grant_run(run)


def _grant_run(run: list[RecordedEvent]) -> None:
    # Consumptions and voids name vouchers by id.
    align_ids("vouchers_voucher", int(run[0].data["voucher_id"]))
    services.grant_vouchers(
        [
            services.Grant(
                key=event.event_id.removeprefix("voucher.granted:"),
                user_id=event.user_id,
                program=event.data["program"],
                template=_template(event),
            )
            for event in run
        ],
        source=run[0].data["source"],
    )


registry.action("voucher.granted", _grant, batched=True)
registry.decisions(CHANGED, "voucher.voided", "voucher.compensation_paid", "voucher.expired")

registry.compared(
    "vouchers: vouchers",
    "SELECT v.grant_key, v.id, v.user_id, t.code, v.face_value, v.remaining,"
    " v.min_closing_amount, v.arrived_at, v.expires_at, v.source, v.voided_at, v.expired_at"
    " FROM vouchers_voucher v JOIN vouchers_vouchertemplate t ON t.id = v.template_id"
    ' ORDER BY v.grant_key COLLATE "C"',
)
registry.compared(
    "vouchers: consumptions",
    "SELECT c.order_id, c.user_id, v.grant_key, c.closed_at, c.loss, c.amount, c.matched_at,"
    " c.payout_key, c.paid_at, c.cancelled_at, c.released_at"
    " FROM vouchers_consumption c JOIN vouchers_voucher v ON v.id = c.voucher_id"
    ' ORDER BY c.order_id COLLATE "C", v.grant_key COLLATE "C", c.matched_at',
    key_columns=3,
)
registry.compared(
    "vouchers: paid days",
    "SELECT p.slug, d.day, d.paid_at FROM vouchers_paidday d"
    " JOIN vouchers_voucherprogram p ON p.id = d.program_id"
    ' ORDER BY p.slug COLLATE "C", d.day',
    key_columns=2,
)
