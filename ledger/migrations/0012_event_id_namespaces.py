"""Inbound facts and domain events live in separate id namespaces.

An event id is unique per origin, not across the log: an inbound event
(origin ``exchange``, sent by any service token) can no longer take the id of
a domain event this product appends later (origin ``rewards``), such as a
user's campaign registration or the audit record of an admin action. The
unique index leads with ``event_id``, so the inbound dedupe stays one index
probe per id, and a lookup by id alone still uses it.

Origin is one of the two values, checked by the database: a row of a third
origin would belong to neither namespace. Its default is ``exchange``: inbound
appends name no origin, so only the domain append ever writes ``rewards``.

The log is the largest table and ingestion appends to it all the time, so
nothing here holds a lock that stops appends for longer than a catalog
change: the new index is built concurrently and then becomes the constraint,
and the CHECK is added unvalidated and validated afterwards (which lets
appends go on). The new rule is in place before the old one goes, so the log
is never without one; every existing row already satisfies it. Hence not one
transaction: a migration interrupted half-way is run again from the start.
"""

from django.db import migrations, models

CREATE_INDEX = (
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS event_id_unique_per_origin"
    " ON ledger_event (event_id, origin)"
)
# Left by an interrupted concurrent build: invalid, and in the way of a new one.
DROP_INVALID_INDEX = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname = 'event_id_unique_per_origin' AND NOT i.indisvalid) THEN
        DROP INDEX event_id_unique_per_origin;
    END IF;
END $$;
"""
INDEX_TO_CONSTRAINT = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'event_id_unique_per_origin') THEN
        ALTER TABLE ledger_event ADD CONSTRAINT event_id_unique_per_origin
            UNIQUE USING INDEX event_id_unique_per_origin;
    END IF;
END $$;
"""
ADD_CHECK = """
ALTER TABLE ledger_event DROP CONSTRAINT IF EXISTS event_origin_known;
ALTER TABLE ledger_event ADD CONSTRAINT event_origin_known
    CHECK (origin IN ('exchange', 'rewards')) NOT VALID;
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("ledger", "0011_paid_item_exact_amount")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(DROP_INVALID_INDEX, migrations.RunSQL.noop),
                migrations.RunSQL(CREATE_INDEX, migrations.RunSQL.noop),
                migrations.RunSQL(
                    INDEX_TO_CONSTRAINT,
                    "ALTER TABLE ledger_event DROP CONSTRAINT event_id_unique_per_origin;",
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.UniqueConstraint(
                        fields=["event_id", "origin"], name="event_id_unique_per_origin"
                    ),
                ),
            ],
        ),
        migrations.RemoveConstraint(model_name="event", name="event_id_unique"),
        migrations.AlterField(
            model_name="event",
            name="origin",
            field=models.CharField(
                choices=[
                    ("exchange", "Exchange (inbound fact)"),
                    ("rewards", "Rewards (domain event)"),
                ],
                db_default="exchange",
                max_length=16,
            ),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    ADD_CHECK,
                    "ALTER TABLE ledger_event DROP CONSTRAINT event_origin_known;",
                ),
                migrations.RunSQL(
                    "ALTER TABLE ledger_event VALIDATE CONSTRAINT event_origin_known;",
                    migrations.RunSQL.noop,
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.CheckConstraint(
                        condition=models.Q(origin__in=["exchange", "rewards"]),
                        name="event_origin_known",
                    ),
                ),
            ],
        ),
    ]
