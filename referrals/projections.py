"""Referral codes and relations, folded from ``user.registered`` (RULES.md 3).

Every known user gets a code derived from their id (``rules.referral_code``;
a collision takes the next derivation). A registration carrying a code starts a
relation with the code's owner, if that owner registered earlier in the log;
otherwise, and for self-referral or accounts of one owner, the attempt is kept
with its refusal. The first registration of a user decides, so folding the log
in any split gives the same codes and relations.
"""

from __future__ import annotations

from typing import Any

from ledger.projection import Projector, register
from referrals import rules


def _fold(cursor: Any, after: int, upto: int) -> None:
    cursor.execute(
        """
        SELECT e.position, e.user_id, coalesce(e.data->>'referral_code', ''),
            coalesce(e.data->>'parent_user_id', ''), e.occurred_at, e.event_id
        FROM ledger_event e
        WHERE e.position > %s AND e.position <= %s AND e.type = 'user.registered'
        ORDER BY e.position
        """,
        [after, upto],
    )
    registrations = cursor.fetchall()
    if not registrations:
        return
    users = list(dict.fromkeys(row[1] for row in registrations))
    cursor.execute("SELECT user_id FROM referrals_referralcode WHERE user_id = ANY(%s)", [users])
    have_code = {row[0] for row in cursor.fetchall()}
    first_position: dict[str, int] = {}
    for position, user_id, *_ in registrations:
        first_position.setdefault(user_id, position)
    new_users = [u for u in users if u not in have_code]
    codes = _assign_codes(cursor, new_users)
    if codes:
        cursor.execute(
            "INSERT INTO referrals_referralcode (user_id, code, position)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])",
            [list(codes), list(codes.values()), [first_position[u] for u in codes]],
        )
    _fold_relations(cursor, [row for row in registrations if row[2]])


def _assign_codes(cursor: Any, users: list[str]) -> dict[str, str]:
    assigned: dict[str, str] = {}
    pending = {user: 0 for user in users}
    while pending:
        wanted = {user: rules.referral_code(user, attempt) for user, attempt in pending.items()}
        cursor.execute(
            "SELECT code FROM referrals_referralcode WHERE code = ANY(%s)", [list(wanted.values())]
        )
        taken = {row[0] for row in cursor.fetchall()} | set(assigned.values())
        retry = {}
        for user in users:
            if user not in pending:
                continue
            code = wanted[user]
            if code in taken:
                retry[user] = pending[user] + 1
            else:
                assigned[user] = code
                taken.add(code)
        pending = retry
    return assigned


def _fold_relations(cursor: Any, registrations: list[tuple[Any, ...]]) -> None:
    if not registrations:
        return
    codes = list({row[2].strip().upper() for row in registrations})
    cursor.execute(
        "SELECT c.code, c.user_id, c.position, coalesce(u.parent_user_id, '')"
        " FROM referrals_referralcode c LEFT JOIN ledger_exchangeuser u ON u.user_id = c.user_id"
        " WHERE c.code = ANY(%s)",
        [codes],
    )
    owners = {
        code: (user_id, position, parent) for code, user_id, position, parent in cursor.fetchall()
    }
    rows = []
    for position, referee, raw_code, referee_parent, occurred_at, event_id in registrations:
        code = raw_code.strip().upper()
        owner = owners.get(code)
        referrer, refusal = "", ""
        if owner is None or owner[1] >= position:
            refusal = "unknown_code"
        else:
            referrer = owner[0]
            if referrer == referee:
                refusal = "self_referral"
            elif rules.same_owner(
                referrer, referee, referrer_parent=owner[2], referee_parent=referee_parent
            ):
                refusal = "same_owner"
        rows.append((referee, referrer, raw_code[:64], occurred_at, event_id, refusal))
    cursor.execute(
        """
        INSERT INTO referrals_relation (referee_id, referrer_id, code, registered_at, event_id, refusal)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[])
        ON CONFLICT (referee_id) DO NOTHING
        """,
        [list(column) for column in zip(*rows, strict=True)],
    )


register(
    Projector(
        "referrals",
        ("user.registered",),
        ("referrals_referralcode", "referrals_relation"),
        _fold,
    )
)
