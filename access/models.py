"""Credentials of the exchange's other services.

A service token is shown once, when created, and stored only as its SHA-256
digest: a leaked database does not leak usable tokens. Revocation is a
timestamp, so the admin keeps the history of who could call us and until when.
"""

from __future__ import annotations

from django.db import models


class ServiceToken(models.Model):
    name = models.CharField(max_length=100, help_text="Which service holds it, e.g. `wallet`.")
    prefix = models.CharField(
        max_length=16, help_text="First characters of the token, to recognise it in logs."
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"{self.name} ({self.prefix}…, {state})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
