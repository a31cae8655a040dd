"""auth_v2.API: WhoAmI names the token a call carries; everything else in auth_v2 answers as pachd
does with auth off ("the auth service is not activated": `rpc.refusal`).

dataver has no users, roles or logins to administer; its tokens (`dataver api-token`) only say
who may call a server bound beyond loopback. A call carrying one of them is answered as pachd
answers a robot token's holder, `robot:NAME`, so code that asks who it is learns which token it
uses; a call without one hears that auth is not activated, as on any pachd without auth (the
SDK raises AuthServiceNotActivated, which tools take to mean "no login needed")."""

from __future__ import annotations

import grpc
from pachyderm_sdk.api import auth

from .clients import Clients
from .gate import token_of
from .rpc import NOT_ACTIVATED, unary
from .status import ApiError

ROBOT = "robot:"
"""pachd's prefix for a subject that is a token rather than a person."""


class AuthService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    @unary("auth_v2.API", "WhoAmI", auth.WhoAmIRequest)
    def who_am_i(self, request: auth.WhoAmIRequest, context: grpc.ServicerContext) -> auth.WhoAmIResponse:
        token = token_of(context.invocation_metadata())
        name = self.clients.get().api_token_holder(token) if token else None
        if name is None:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, NOT_ACTIVATED)
        return auth.WhoAmIResponse(username=ROBOT + name)
