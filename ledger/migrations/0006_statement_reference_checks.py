"""References of postings and payout instructions, checked per statement.

Row-level foreign keys checked every posting on its own and locked the
referenced account and transaction rows (FOR KEY SHARE) each time: in a payout
run of 274,071 credits they were 12 of its seconds. The same guarantee is
given here once per INSERT statement, over its new rows (transition tables):
every posting names an existing transaction and account; every payout
instruction names a posting of its own transaction, to a user account, of the
same amount and asset. Nothing referenced can disappear: transactions and
postings are append-only (0002), and accounts and payout instructions refuse
DELETE here; the money columns of a payout instruction cannot be changed.
"""

import django.db.models.deletion
from django.db import migrations, models


CHECKS = """
CREATE FUNCTION rewards_check_posting_refs() RETURNS trigger
LANGUAGE plpgsql
-- Index probes whatever the statistics say: right after a bulk load the
-- referenced tables may look empty, and a scan per new row would not end.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    bad record;
BEGIN
    -- Each distinct reference once: a payout run names each transaction twice
    -- and its funding account once per credit.
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
CREATE TRIGGER ledger_posting_refs AFTER INSERT ON ledger_posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION rewards_check_posting_refs();

CREATE FUNCTION rewards_check_payout_refs() RETURNS trigger
LANGUAGE plpgsql
-- Index probes whatever the statistics say: right after a bulk load the
-- referenced tables may look empty, and a scan per new row would not end.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.id, n.posting_id INTO bad FROM new_payouts n
    WHERE NOT EXISTS (
        SELECT 1 FROM ledger_posting p JOIN ledger_account a ON a.id = p.account_id
        WHERE p.id = n.posting_id AND p.transaction_id = n.transaction_id
          AND p.amount = n.amount AND p.asset = n.asset
          AND a.kind = 'user' AND a.user_id = n.user_id
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payout instruction % does not match a user posting of its transaction (posting %)',
            bad.id, bad.posting_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_payoutinstruction_refs AFTER INSERT ON ledger_payoutinstruction
    REFERENCING NEW TABLE AS new_payouts
    FOR EACH STATEMENT EXECUTE FUNCTION rewards_check_payout_refs();

CREATE FUNCTION rewards_refuse_payout_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.transaction_id, NEW.posting_id, NEW.idempotency_key, NEW.user_id, NEW.account_kind,
        NEW.asset, NEW.amount, NEW.kind, NEW.expires_at, NEW.created_at)
       IS DISTINCT FROM
       (OLD.transaction_id, OLD.posting_id, OLD.idempotency_key, OLD.user_id, OLD.account_kind,
        OLD.asset, OLD.amount, OLD.kind, OLD.expires_at, OLD.created_at) THEN
        RAISE EXCEPTION 'payout instruction %: only its delivery fields may change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_payoutinstruction_fixed BEFORE UPDATE ON ledger_payoutinstruction
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_payout_change();
CREATE TRIGGER ledger_payoutinstruction_kept BEFORE DELETE ON ledger_payoutinstruction
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();
CREATE TRIGGER ledger_account_kept BEFORE DELETE ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();
"""

DROP_CHECKS = """
DROP TRIGGER ledger_account_kept ON ledger_account;
DROP TRIGGER ledger_payoutinstruction_kept ON ledger_payoutinstruction;
DROP TRIGGER ledger_payoutinstruction_fixed ON ledger_payoutinstruction;
DROP FUNCTION rewards_refuse_payout_change();
DROP TRIGGER ledger_payoutinstruction_refs ON ledger_payoutinstruction;
DROP FUNCTION rewards_check_payout_refs();
DROP TRIGGER ledger_posting_refs ON ledger_posting;
DROP FUNCTION rewards_check_posting_refs();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0005_event_occurred_brin'),
    ]

    operations = [
        migrations.RunSQL(CHECKS, DROP_CHECKS),
        migrations.AlterField(
            model_name='payoutinstruction',
            name='posting',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='payout', to='ledger.posting'),
        ),
        migrations.AlterField(
            model_name='payoutinstruction',
            name='transaction',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='ledger.ledgertransaction'),
        ),
        migrations.AlterField(
            model_name='posting',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='postings', to='ledger.account'),
        ),
        migrations.AlterField(
            model_name='posting',
            name='transaction',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='postings', to='ledger.ledgertransaction'),
        ),
    ]
