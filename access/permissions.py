"""Who may call what. A user only ever reaches their own data: views take the
user id from the token (:func:`caller_user_id`), never from the URL or body."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from access.principals import ExchangeUserPrincipal, ServicePrincipal


class IsService(BasePermission):
    message = "this endpoint is for the exchange's services (service token)"

    def has_permission(self, request: Request, view: Any) -> bool:
        # An anonymous caller is answered 401 by DRF itself (no authenticator succeeded).
        return isinstance(request.user, ServicePrincipal)


class IsExchangeUser(BasePermission):
    message = "this endpoint is for the exchange's users (user JWT)"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, ExchangeUserPrincipal)


def caller_user_id(request: Request) -> str:
    user = request.user
    if not isinstance(user, ExchangeUserPrincipal):
        raise NotAuthenticated()
    return user.user_id
