"""The event store and the ledger are append-only, enforced by the database.

A trigger refuses UPDATE and DELETE on events, transactions and postings,
whoever issues them (the ORM, a raw query, a psql session): facts are corrected
by appending a reversing entry, never by editing. TRUNCATE is left to the
database owner (test teardown uses it); production runs the application under
a role without TRUNCATE on these tables (docs/operations.md).

A second trigger refuses any INSERT statement whose postings do not sum to
zero per transaction and asset. The bookkeeping code writes every leg of a
transaction in one statement, so the check needs only the new rows.
"""

from django.db import migrations

APPEND_ONLY_TABLES = ("ledger_event", "ledger_ledgertransaction", "ledger_posting")

FUNCTION = """
CREATE OR REPLACE FUNCTION rewards_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: the table is append-only; correct by appending a reversal',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
"""

BALANCED = """
CREATE OR REPLACE FUNCTION rewards_check_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT transaction_id, asset, sum(amount) AS total INTO bad
    FROM new_postings GROUP BY transaction_id, asset HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unbalanced transaction %: its postings in % sum to %',
            bad.transaction_id, bad.asset, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_posting_balanced AFTER INSERT ON ledger_posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION rewards_check_balanced();
"""


def _trigger(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();"
    )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS rewards_refuse_change();"),
        *[
            migrations.RunSQL(_trigger(table), f"DROP TRIGGER {table}_append_only ON {table};")
            for table in APPEND_ONLY_TABLES
        ],
        migrations.RunSQL(
            BALANCED,
            "DROP TRIGGER ledger_posting_balanced ON ledger_posting;"
            "DROP FUNCTION rewards_check_balanced();",
        ),
    ]
