"""The event log is chained: every append records a link of hashes.

``ledger_loglink`` holds one row per append (``ledger.chain``): each added
event's entry (its position and its hash), the digest of the entries and a
chain hash over the previous link's. Links are append-only like the log (the
trigger of 0002).

The events already in the log when this migration runs are chained here, in
genesis links of at most 100,000 events, under the append lock: appends wait
for it. It reads the log once, in bounded memory, about 40,000 events a
second (four minutes for ten million, docs/benchmarks.md).
"""

from django.db import migrations, models

TRIGGER = """
CREATE TRIGGER ledger_loglink_append_only BEFORE UPDATE OR DELETE ON ledger_loglink
    FOR EACH ROW EXECUTE FUNCTION rewards_refuse_change();
"""


def chain_the_history(apps: object, schema_editor: object) -> None:
    # The hashes have one definition, the application's (ledger.chain).
    from config import clock
    from ledger.chain import seal

    seal(clock.now())


class Migration(migrations.Migration):
    dependencies = [("ledger", "0013_quarantine_received_bytes")]

    operations = [
        migrations.CreateModel(
            name="LogLink",
            fields=[
                ("link", models.BigIntegerField(primary_key=True, serialize=False)),
                ("first_position", models.BigIntegerField()),
                ("last_position", models.BigIntegerField()),
                ("events", models.IntegerField()),
                ("entries", models.BinaryField(editable=False)),
                ("events_digest", models.CharField(max_length=64)),
                ("previous_hash", models.CharField(max_length=64)),
                ("chain_hash", models.CharField(max_length=64)),
                ("recorded_at", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["recorded_at", "link"], name="loglink_recorded")],
                "constraints": [
                    models.UniqueConstraint(fields=("last_position",), name="loglink_last_position")
                ],
            },
        ),
        migrations.RunSQL(TRIGGER, "DROP TRIGGER ledger_loglink_append_only ON ledger_loglink;"),
        migrations.RunPython(chain_the_history, migrations.RunPython.noop),
    ]
