"""``verify_ledger``: every invariant of RULES.md section 5, checked in SQL."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

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


@dataclass(frozen=True)
class Breach:
    check: str
    rule: str
    rows: list[tuple[object, ...]]


def verify_ledger() -> list[Breach]:
    """Run every check; an empty list means the ledger is sound."""
    breaches = []
    with connection.cursor() as cursor:
        for name, (rule, sql) in CHECKS.items():
            cursor.execute(sql)
            rows = cursor.fetchall()
            if rows:
                breaches.append(Breach(name, rule, rows))
    return breaches
