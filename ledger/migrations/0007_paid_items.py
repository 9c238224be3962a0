"""Paid items: the row per payable item that ties it to the credit that paid it.

Unique per (payer, item): the database, not the jobs, makes an item paid at
most once. Append-only (the trigger of 0002), and every row must name a
ledger transaction that exists, checked once per INSERT statement.
"""

from django.db import migrations, models

REFS = """
CREATE FUNCTION rewards_check_paid_item_refs() RETURNS trigger
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
CREATE TRIGGER ledger_paiditem_refs AFTER INSERT ON ledger_paiditem
    REFERENCING NEW TABLE AS new_items
    FOR EACH STATEMENT EXECUTE FUNCTION rewards_check_paid_item_refs();
CREATE TRIGGER ledger_paiditem_append_only BEFORE UPDATE OR DELETE ON ledger_paiditem
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();
"""

REFS_REVERSE = """
DROP TRIGGER ledger_paiditem_append_only ON ledger_paiditem;
DROP TRIGGER ledger_paiditem_refs ON ledger_paiditem;
DROP FUNCTION rewards_check_paid_item_refs();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_statement_reference_checks")]

    operations = [
        migrations.CreateModel(
            name="PaidItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("payer", models.CharField(help_text="The kind of item, e.g. voucher.consumption (ledger.payables).", max_length=40)),
                ("item_id", models.BigIntegerField(help_text="The item's id in its program's table.")),
                ("amount", models.DecimalField(decimal_places=18, help_text="What the item was owed, before the credit's rounding.", max_digits=38)),
                ("transaction_id", models.BigIntegerField(help_text="The ledger transaction of the credit.")),
                ("user_id", models.CharField(max_length=64)),
                ("paid_at", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["transaction_id"], name="paiditem_transaction")],
                "constraints": [models.UniqueConstraint(fields=("payer", "item_id"), name="paiditem_once")],
            },
        ),
        migrations.RunSQL(REFS, REFS_REVERSE),
    ]
