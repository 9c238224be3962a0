"""Every payout records a digest of what it paid (``ledger.digests``).

Written by ``pay_items`` in the database transaction of the credits it
describes; append-only like them (the trigger of 0002).
"""

from django.db import migrations, models

TRIGGER = """
CREATE TRIGGER ledger_payoutdigest_append_only BEFORE UPDATE OR DELETE ON ledger_payoutdigest
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0014_log_chain")]

    operations = [
        migrations.CreateModel(
            name="PayoutDigest",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("recorded_at", models.DateTimeField()),
                ("payers", models.CharField(help_text="The kinds of item paid, '/'-separated.", max_length=200)),
                ("funding_account", models.CharField(help_text="The account's code.", max_length=200)),
                ("asset", models.CharField(max_length=16)),
                ("cause", models.JSONField(default=dict)),
                ("credits", models.IntegerField()),
                ("items", models.IntegerField()),
                ("total", models.DecimalField(decimal_places=18, help_text="The sum of the credits.", max_digits=38)),
                ("first_transaction_id", models.BigIntegerField()),
                ("last_transaction_id", models.BigIntegerField()),
                ("digest", models.CharField(max_length=64)),
            ],
        ),
        migrations.RunSQL(
            TRIGGER, "DROP TRIGGER ledger_payoutdigest_append_only ON ledger_payoutdigest;"
        ),
    ]
