"""Quarantine keeps every input's exact bytes beside its readable text.

``raw`` is text, which PostgreSQL cannot hold with a NUL byte or invalid UTF-8
in it; ``received`` is bytea and holds anything. Ops' corrections go to
``raw``: what was received stays as it was.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ledger", "0012_event_id_namespaces")]

    operations = [
        migrations.AddField(
            model_name="quarantinedinput",
            name="received",
            field=models.BinaryField(editable=False, null=True),
        ),
    ]
