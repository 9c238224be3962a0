"""Money moves only through postings, whoever holds the connection.

Four refusals, checked by the database for every role:

1. A balance changes only with its postings. Every change of a funding or
   external account's ``balance`` is added up per account for the database
   transaction, and so is every posting written to such an account; at COMMIT
   (a deferred constraint trigger) the two sums must be equal for each
   account. The bookkeeping updates the balance before it writes the postings,
   hence the check at commit. The work is per statement and per account, never
   per posting: a payout run of 100,000 credits adds one row for its funding
   account. The sums are kept in ``ledger_private.balance_movement``, a table
   the application role cannot see (no USAGE on the schema): only the trigger
   functions below (SECURITY DEFINER) write it, and each row is deleted by the
   check that reads it, so it is empty whenever no transaction is open.
   User accounts keep no balance (see ``Account``): theirs must stay 0.
   An account opens with a balance of 0, and only its balance may ever change.
2. A posting names a ledger transaction created in the same database
   transaction: nothing is ever added to an old transaction. Rows carry the
   id of the database transaction that wrote them (``xmin``); a savepoint
   writes under a later id of its own, which is this transaction's while it is
   still in progress (``rewards_written_here``). Checked once per INSERT
   statement, per distinct writer, in the reference check of 0006.
3. Quarantined inputs are kept: no DELETE; while an entry is open ops may
   correct its raw text and the replay records its errors and outcome; once
   replayed or discarded it no longer changes.
4. Trigger functions that read tables name their search path: the application
   role may create temporary tables, and a temporary table is otherwise found
   before the real one of the same name.

What the application role may do at all (no TRUNCATE, no DELETE of history, no
trigger changes) is granted by ``manage.py create_roles``.
"""

from django.db import migrations

PRIVATE = """
CREATE SCHEMA ledger_private;
-- Unlogged: its rows live only while their transaction is open.
CREATE UNLOGGED TABLE ledger_private.balance_movement (
    xid xid8 NOT NULL,
    account_id bigint NOT NULL,
    moved numeric NOT NULL DEFAULT 0,
    posted numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (xid, account_id)
);
"""

WRITTEN_HERE = """
CREATE FUNCTION rewards_written_here(writer xid) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    top xid8 := pg_current_xact_id();
    later bigint;
BEGIN
    IF writer = top::xid THEN
        RETURN true;
    END IF;
    -- A savepoint's id comes after its transaction's: how far after, modulo 2^32.
    later := (writer::text::bigint - top::text::bigint % 4294967296 + 4294967296) % 4294967296;
    IF later = 0 OR later >= 2147483648 THEN
        RETURN false;  -- older than this transaction
    END IF;
    -- A row is visible to this transaction only if its writer has committed or
    -- is this transaction: a writer still in progress is one of its savepoints.
    BEGIN
        RETURN coalesce(
            pg_xact_status((top::text::bigint + later)::text::xid8) = 'in progress', false);
    EXCEPTION WHEN OTHERS THEN
        RETURN false;
    END;
END;
$$;
"""

ACCOUNTS = """
CREATE FUNCTION rewards_account_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF to_jsonb(NEW) - 'balance' IS DISTINCT FROM to_jsonb(OLD) - 'balance' THEN
        RAISE EXCEPTION 'account %: only its balance may change', OLD.code
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.balance IS DISTINCT FROM OLD.balance THEN
        IF OLD.kind = 'user' THEN
            RAISE EXCEPTION 'account %: a user account keeps no balance (its postings are its balance)',
                OLD.code USING ERRCODE = 'check_violation';
        END IF;
        INSERT INTO ledger_private.balance_movement AS m (xid, account_id, moved)
        VALUES (pg_current_xact_id(), OLD.id, NEW.balance - OLD.balance)
        ON CONFLICT (xid, account_id) DO UPDATE SET moved = m.moved + EXCLUDED.moved;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_account_changed BEFORE UPDATE ON ledger_account
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION rewards_account_changed();

CREATE FUNCTION rewards_refuse_opening_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account % cannot open with a balance of %: money enters an account through postings',
        NEW.code, NEW.balance USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER ledger_account_opens_empty BEFORE INSERT ON ledger_account
    FOR EACH ROW WHEN (NEW.balance <> 0) EXECUTE FUNCTION rewards_refuse_opening_balance();

CREATE FUNCTION ledger_private.check_balance_movement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    movement record;
BEGIN
    DELETE FROM ledger_private.balance_movement
    WHERE xid = NEW.xid AND account_id = NEW.account_id
    RETURNING moved, posted INTO movement;
    IF FOUND AND movement.moved <> movement.posted THEN
        RAISE EXCEPTION 'account %: its balance moved by % but its postings in this transaction sum to %; a balance changes only with its postings',
            (SELECT code FROM ledger_account WHERE id = NEW.account_id), movement.moved,
            movement.posted
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER balance_moves_with_postings
    AFTER INSERT ON ledger_private.balance_movement
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_private.check_balance_movement();
"""

DROP_ACCOUNTS = """
DROP TRIGGER balance_moves_with_postings ON ledger_private.balance_movement;
DROP FUNCTION ledger_private.check_balance_movement();
DROP TRIGGER ledger_account_opens_empty ON ledger_account;
DROP FUNCTION rewards_refuse_opening_balance();
DROP TRIGGER ledger_account_changed ON ledger_account;
DROP FUNCTION rewards_account_changed();
"""

POSTINGS = """
CREATE OR REPLACE FUNCTION rewards_check_posting_refs() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
-- Index probes whatever the statistics say: right after a bulk load the
-- referenced tables may look empty, and a scan per new row would not end.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    ref record;
BEGIN
    -- Each distinct transaction once, grouped by the database transaction that
    -- wrote it: a payout run's transactions all have one writer.
    FOR ref IN
        SELECT t.xmin AS writer, min(n.transaction_id) AS example
        FROM (SELECT DISTINCT transaction_id FROM new_postings) n
        LEFT JOIN ledger_ledgertransaction t ON t.id = n.transaction_id
        GROUP BY t.xmin
    LOOP
        IF ref.writer IS NULL THEN
            RAISE EXCEPTION 'a posting names transaction %, which does not exist', ref.example
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF NOT rewards_written_here(ref.writer) THEN
            RAISE EXCEPTION 'a posting names transaction %, which was not created in this database transaction: postings are written with their transaction, never added to an earlier one',
                ref.example USING ERRCODE = 'restrict_violation';
        END IF;
    END LOOP;
    -- Each distinct account once; what is posted to an account that keeps a
    -- balance is added to this transaction's sum for it (checked at commit).
    FOR ref IN
        SELECT n.account_id, n.asset, n.total, a.id AS found
        FROM (SELECT account_id, asset, sum(amount) AS total FROM new_postings
              GROUP BY account_id, asset) n
        LEFT JOIN ledger_account a ON a.id = n.account_id AND a.asset = n.asset
        WHERE a.id IS NULL OR a.kind <> 'user'
    LOOP
        IF ref.found IS NULL THEN
            RAISE EXCEPTION 'a posting names account % in %, which does not exist in that asset',
                ref.account_id, ref.asset
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        INSERT INTO ledger_private.balance_movement AS m (xid, account_id, posted)
        VALUES (pg_current_xact_id(), ref.account_id, ref.total)
        ON CONFLICT (xid, account_id) DO UPDATE SET posted = m.posted + EXCLUDED.posted;
    END LOOP;
    RETURN NULL;
END;
$$;
"""

# The function as migration 0006 wrote it, for going back.
POSTINGS_BEFORE = """
CREATE OR REPLACE FUNCTION rewards_check_posting_refs() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.transaction_id INTO bad FROM (SELECT DISTINCT transaction_id FROM new_postings) n
    WHERE NOT EXISTS (SELECT 1 FROM ledger_ledgertransaction t WHERE t.id = n.transaction_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a posting names transaction %, which does not exist', bad.transaction_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.account_id, n.asset INTO bad FROM (SELECT DISTINCT account_id, asset FROM new_postings) n
    WHERE NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.id = n.account_id AND a.asset = n.asset)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a posting names account % in %, which does not exist in that asset',
            bad.account_id, bad.asset
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
ALTER FUNCTION rewards_check_posting_refs() RESET search_path;
"""

QUARANTINE = """
CREATE FUNCTION rewards_keep_quarantined() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'quarantined input %: kept for good; discard it instead', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'open' THEN
        RAISE EXCEPTION 'quarantined input % is %: a resolved entry no longer changes',
            OLD.id, OLD.status USING ERRCODE = 'restrict_violation';
    END IF;
    -- While open: the raw text (a correction), the errors and outcome of a
    -- replay, and the resolution (replayed or discarded, by whom, when).
    IF (NEW.id, NEW.received_at, NEW.source, NEW.event_id, NEW.event_type, NEW.reason)
       IS DISTINCT FROM
       (OLD.id, OLD.received_at, OLD.source, OLD.event_id, OLD.event_type, OLD.reason) THEN
        RAISE EXCEPTION 'quarantined input %: only its correction and resolution may change',
            OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status NOT IN ('open', 'replayed', 'discarded') THEN
        RAISE EXCEPTION 'quarantined input %: no status %', OLD.id, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_quarantinedinput_kept BEFORE UPDATE OR DELETE ON ledger_quarantinedinput
    FOR EACH ROW EXECUTE FUNCTION rewards_keep_quarantined();
"""

DROP_QUARANTINE = """
DROP TRIGGER ledger_quarantinedinput_kept ON ledger_quarantinedinput;
DROP FUNCTION rewards_keep_quarantined();
"""

# Functions that read tables, with the schema the tables are in (where this
# migration runs) ahead of any temporary table.
READERS = (
    "rewards_check_posting_refs()",
    "rewards_check_payout_refs()",
    "rewards_check_paid_item_refs()",
    "rewards_account_changed()",
    "ledger_private.check_balance_movement()",
)

PIN_SEARCH_PATH = (
    "DO $$ DECLARE f text; BEGIN FOREACH f IN ARRAY ARRAY[{}] LOOP"
    " EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp',"
    " f, current_schema()); END LOOP; END $$;"
).format(", ".join(f"'{f}'" for f in READERS))

UNPIN_SEARCH_PATH = " ".join(
    f"ALTER FUNCTION {f} RESET search_path;"
    for f in ("rewards_check_payout_refs()", "rewards_check_paid_item_refs()")
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_exact_read_model_sums")]

    operations = [
        migrations.RunSQL(PRIVATE, "DROP SCHEMA ledger_private CASCADE;"),
        migrations.RunSQL(WRITTEN_HERE, "DROP FUNCTION rewards_written_here(xid);"),
        migrations.RunSQL(ACCOUNTS, DROP_ACCOUNTS),
        migrations.RunSQL(POSTINGS, POSTINGS_BEFORE),
        migrations.RunSQL(QUARANTINE, DROP_QUARANTINE),
        migrations.RunSQL(PIN_SEARCH_PATH, UNPIN_SEARCH_PATH),
    ]
