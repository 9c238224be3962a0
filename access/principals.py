"""Who is calling: ``request.user`` of the API is one of these, never a Django user.

Django's users are ops staff in the admin; the API's callers are the
exchange's users (by JWT) and the exchange's services (by service token).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExchangeUserPrincipal:
    """A user of the exchange, as its auth service vouched for them (JWT ``sub``)."""

    user_id: str
    is_authenticated: bool = True
    is_service: bool = False

    def __str__(self) -> str:
        return f"user:{self.user_id}"


@dataclass(frozen=True)
class ServicePrincipal:
    """One of the exchange's services, holding a service token."""

    name: str
    token_id: int
    is_authenticated: bool = True
    is_service: bool = True

    def __str__(self) -> str:
        return f"service:{self.name}"
