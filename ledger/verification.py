"""``verify_ledger``: every invariant of RULES.md section 5, checked in SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection

from ledger.money import DEFAULT_PAYOUT_PLACES

# name -> (what must hold, a query returning one row per breach, at most 20)
CHECKS: dict[str, tuple[str, str]] = {
    "balanced": (
        "the postings of every transaction sum to zero in each asset",
        """SELECT transaction_id, asset, sum(amount) FROM ledger_posting
           GROUP BY transaction_id, asset HAVING sum(amount) <> 0 LIMIT 20""",
    ),
    "two_legs": (
        "every transaction has at least two postings",
        """SELECT t.id, count(p.id) FROM ledger_ledgertransaction t
           LEFT JOIN ledger_posting p ON p.transaction_id = t.id
           GROUP BY t.id HAVING count(p.id) < 2 LIMIT 20""",
    ),
    "asset_matches_account": (
        "every posting is in its account's asset",
        """SELECT p.id, p.asset, a.asset FROM ledger_posting p
           JOIN ledger_account a ON a.id = p.account_id WHERE p.asset <> a.asset LIMIT 20""",
    ),
    "balances_match_postings": (
        "every funding and external account's balance equals the sum of its postings",
        """SELECT a.code, a.balance, coalesce(s.total, 0) FROM ledger_account a
           LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_posting
                      GROUP BY account_id) s ON s.account_id = a.id
           WHERE a.kind <> 'user' AND a.balance <> coalesce(s.total, 0) LIMIT 20""",
    ),
    "user_balance_not_kept": (
        "user accounts keep no balance of their own (theirs is the sum of their postings)",
        """SELECT code, balance FROM ledger_account WHERE kind = 'user' AND balance <> 0 LIMIT 20""",
    ),
    "funding_never_negative": (
        "no funding account is below zero, now or after any of its postings",
        """SELECT code, running FROM (
               SELECT a.code, sum(p.amount) OVER (PARTITION BY p.account_id
                   ORDER BY p.posted_at, p.id) AS running
               FROM ledger_posting p JOIN ledger_account a ON a.id = p.account_id
               WHERE a.kind = 'funding') r
           WHERE running < 0 LIMIT 20""",
    ),
    "payout_matches_posting": (
        "every payout instruction mirrors a credit posting to that user's account",
        """SELECT o.id, o.amount, p.amount FROM ledger_payoutinstruction o
           JOIN ledger_posting p ON p.id = o.posting_id
           JOIN ledger_account a ON a.id = p.account_id
           WHERE p.amount <> o.amount OR p.asset <> o.asset OR a.kind <> 'user'
              OR a.user_id <> o.user_id OR a.user_kind <> o.account_kind
              OR p.transaction_id <> o.transaction_id LIMIT 20""",
    ),
    "every_credit_has_payout": (
        "every credit to a user has a payout instruction",
        """SELECT p.id, a.code, p.amount FROM ledger_posting p
           JOIN ledger_account a ON a.id = p.account_id
           LEFT JOIN ledger_payoutinstruction o ON o.posting_id = p.id
           WHERE a.kind = 'user' AND p.amount > 0 AND o.id IS NULL LIMIT 20""",
    ),
}


def payable_checks() -> dict[str, tuple[str, str]]:
    """The checks of paid items (``ledger.payables``), for every registered payer:
    a credit pays exactly its items, rounded down once; an item is paid once;
    no credit of a payer's kind pays nothing; no item paid is missing."""
    from ledger.payables import all_payers

    payers = all_payers()
    for payer in payers:
        # Names and tables come from code, never from input; checked all the same.
        if not re.fullmatch(r"[a-z_.]+", payer.name + payer.table + payer.credit_kind):
            raise ValueError(f"unexpected payer declaration {payer}")
    kinds = ", ".join(sorted({f"'{p.credit_kind}'" for p in payers})) or "NULL"
    pairs = ", ".join(f"('{p.name}', '{p.credit_kind}')" for p in payers) or "(NULL, NULL)"
    missing = " UNION ALL ".join(
        f"SELECT i.payer, i.item_id FROM ledger_paiditem i WHERE i.payer = '{p.name}'"  # noqa: S608
        f" AND NOT EXISTS (SELECT 1 FROM {p.table} x WHERE x.id = i.item_id)"
        for p in payers
    )
    return {
        "item_paid_once": (
            "no payable item is paid twice",
            """SELECT payer, item_id, count(*) FROM ledger_paiditem
               GROUP BY payer, item_id HAVING count(*) > 1 LIMIT 20""",
        ),
        "credit_equals_its_items": (
            f"every credit that pays items equals their sum rounded down once"
            f" ({DEFAULT_PAYOUT_PLACES} places)",
            f"""SELECT i.transaction_id, i.owed, c.credited FROM (
                   SELECT transaction_id, sum(amount) AS owed FROM ledger_paiditem
                   GROUP BY transaction_id) i
               LEFT JOIN (SELECT p.transaction_id, sum(p.amount) AS credited
                          FROM ledger_posting p JOIN ledger_account a ON a.id = p.account_id
                          WHERE a.kind = 'user' AND p.amount > 0 GROUP BY p.transaction_id) c
                 ON c.transaction_id = i.transaction_id
               WHERE c.credited IS DISTINCT FROM trunc(i.owed, {DEFAULT_PAYOUT_PLACES})
               LIMIT 20""",  # noqa: S608 - a constant
        ),
        "credit_pays_items": (
            "every credit of a program's payout kind pays at least one payable item",
            f"""SELECT t.id, t.kind, t.idempotency_key FROM ledger_ledgertransaction t
               WHERE t.kind IN ({kinds}) AND NOT EXISTS (
                   SELECT 1 FROM ledger_paiditem i WHERE i.transaction_id = t.id)
               LIMIT 20""",  # noqa: S608 - names from the payer registry
        ),
        "item_paid_by_its_kind": (
            "every paid item is paid by a credit of its payer's kind to its own user",
            f"""SELECT i.payer, i.item_id, t.kind, i.user_id FROM ledger_paiditem i
               JOIN ledger_ledgertransaction t ON t.id = i.transaction_id
               WHERE (i.payer, t.kind) NOT IN ({pairs}) OR NOT EXISTS (
                   SELECT 1 FROM ledger_posting p JOIN ledger_account a ON a.id = p.account_id
                   WHERE p.transaction_id = t.id AND a.kind = 'user' AND a.user_id = i.user_id)
               LIMIT 20""",  # noqa: S608 - names from the payer registry
        ),
        "paid_item_exists": (
            "every paid item is a row of its program's table",
            f"SELECT * FROM ({missing}) m LIMIT 20" if missing else "SELECT 1 WHERE false",  # noqa: S608
        ),
    }


def all_checks() -> dict[str, tuple[str, str]]:
    return {**CHECKS, **payable_checks()}


@dataclass(frozen=True)
class Breach:
    check: str
    rule: str
    rows: list[tuple[object, ...]]


def verify_ledger() -> list[Breach]:
    """Run every check; an empty list means the ledger is sound."""
    breaches = []
    with connection.cursor() as cursor:
        for name, (rule, sql) in all_checks().items():
            cursor.execute(sql)
            rows = cursor.fetchall()
            if rows:
                breaches.append(Breach(name, rule, rows))
    return breaches
