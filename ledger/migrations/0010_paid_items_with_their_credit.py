"""A paid item is written with the credit that pays it, never afterwards.

The reference check of 0007 also requires the named ledger transaction to
have been created in the same database transaction (``rewards_written_here``
of 0009): an item cannot be marked paid by an old credit, so an item is paid
exactly when its credit is posted, and a credit's items are fixed at its
commit.
"""

from django.db import migrations

REFS = """
CREATE OR REPLACE FUNCTION rewards_check_paid_item_refs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ref record;
BEGIN
    -- Each distinct transaction once, grouped by the database transaction that
    -- wrote it: a payout's credits all have one writer.
    FOR ref IN
        SELECT t.xmin AS writer, min(n.transaction_id) AS example
        FROM (SELECT DISTINCT transaction_id FROM new_items) n
        LEFT JOIN ledger_ledgertransaction t ON t.id = n.transaction_id
        GROUP BY t.xmin
    LOOP
        IF ref.writer IS NULL THEN
            RAISE EXCEPTION 'a paid item names transaction %, which does not exist', ref.example
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF NOT rewards_written_here(ref.writer) THEN
            RAISE EXCEPTION 'a paid item names transaction %, which was not created in this database transaction: an item is paid with its credit, never by an earlier one',
                ref.example USING ERRCODE = 'restrict_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION rewards_check_paid_item_refs() SET search_path = pg_catalog, %I, pg_temp',
        current_schema());
END $$;
"""

REFS_BEFORE = """
CREATE OR REPLACE FUNCTION rewards_check_paid_item_refs() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.payer, n.item_id, n.transaction_id INTO bad FROM new_items n
    WHERE NOT EXISTS (SELECT 1 FROM ledger_ledgertransaction t WHERE t.id = n.transaction_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'paid item % #% names transaction %, which does not exist',
            bad.payer, bad.item_id, bad.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION rewards_check_paid_item_refs() SET search_path = pg_catalog, %I, pg_temp',
        current_schema());
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0009_money_only_through_postings")]

    operations = [migrations.RunSQL(REFS, REFS_BEFORE)]
