"""The tamper-evident chain over the event log.

Every append to ``ledger_event`` records one :class:`LogLink`, in the same
transaction and under the same append lock (``ledger.event_store``): the hash
of each event it added, a digest of them, and a chain hash that also covers
the previous link's. Rewriting one event in place, deleting it or slipping one
into a gap of the positions no longer agrees with the link that covered it;
rewriting the links too changes every chain hash after it, and so the head
that was published (``manage.py chain_head``). ``manage.py verify_log``
recomputes it all. The hashes are defined in ``ledger.chain``.
"""

from __future__ import annotations

from django.db import models


class LogLink(models.Model):
    """One append to the log, chained to the one before (append-only)."""

    # Numbered 1, 2, 3 ... with no gaps: the primary key refuses two links
    # with the same number, so the chain cannot fork even for a writer that
    # skipped the append lock.
    link = models.BigIntegerField(primary_key=True)
    # The link covers the positions (previous link's last, last]: every event
    # present there when it was recorded. Positions may have gaps (a rolled
    # back append consumed them); first_position is the start of the range,
    # not necessarily an event.
    first_position = models.BigIntegerField()
    last_position = models.BigIntegerField()
    events = models.IntegerField()
    # 40 bytes per event, in position order (its position and its hash): what
    # names the event at fault when the link no longer agrees with the log.
    entries = models.BinaryField(editable=False)
    # sha256 (hex) of ``entries``.
    events_digest = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    # sha256 (hex) over the previous hash and this link's fields.
    chain_hash = models.CharField(max_length=64)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            # A kept head is named by its position (verify_log --expect HASH@POSITION).
            models.UniqueConstraint(fields=["last_position"], name="loglink_last_position"),
        ]
        # The head as of a day's end (chain_head --day).
        indexes = [models.Index(fields=["recorded_at", "link"], name="loglink_recorded")]

    def __str__(self) -> str:
        return f"link {self.link} ({self.first_position}-{self.last_position})"
