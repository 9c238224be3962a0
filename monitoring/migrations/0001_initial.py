"""Ingestion tallies, seeded from what the log and the quarantine already hold.

From this migration on, ingestion adds each batch's outcomes in its own
transaction (``monitoring.tallies``). The seed counts the events appended and
the inputs quarantined before; duplicates were never stored, so their tally
starts at zero. Events a process still running the previous release ingests
during the deploy are not counted: the counters are for rates and alerts, and
Prometheus takes a rate across such a step without harm.
"""

from django.db import migrations, models

from ledger.contract import EVENT_TYPES

SEED = """
INSERT INTO monitoring_ingestcount (source, event_type, outcome, reason, count)
SELECT source, type, 'accepted', '', count(*)
FROM ledger_event WHERE origin = 'exchange' GROUP BY source, type
UNION ALL
SELECT source, CASE WHEN event_type = ANY(%(types)s) THEN event_type ELSE '' END, 'rejected',
    reason, count(*)
FROM ledger_quarantinedinput
GROUP BY 1, 2, 4
ON CONFLICT (source, event_type, outcome, reason)
DO UPDATE SET count = monitoring_ingestcount.count + EXCLUDED.count
"""


def seed(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(SEED, {"types": list(EVENT_TYPES)})


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("ledger", "0006_statement_reference_checks"),
    ]

    operations = [
        migrations.CreateModel(
            name='IngestCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('source', models.CharField(help_text='The door: rest, stream, file, replay ...', max_length=16)),
                ('event_type', models.CharField(blank=True, default='', max_length=64)),
                ('outcome', models.CharField(help_text='accepted, duplicate or rejected.', max_length=16)),
                ('reason', models.CharField(blank=True, default='', help_text='Why it was rejected (quarantine reason).', max_length=32)),
                ('count', models.BigIntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('source', 'event_type', 'outcome', 'reason'), name='ingestcount_key')],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
