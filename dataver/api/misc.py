"""versionpb_v2.API: which pachd release's API this is."""

from __future__ import annotations

import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import version

from .rpc import unary

PACHYDERM_VERSION = (2, 12, 0)
"""The pachd release whose API this serves (what the SDK reads to decide what it may call)."""


class VersionService:
    @unary("versionpb_v2.API", "GetVersion", Empty)
    def get_version(self, request: Empty, context: grpc.ServicerContext) -> version.Version:
        from .. import __version__

        major, minor, micro = PACHYDERM_VERSION
        return version.Version(
            major=major, minor=minor, micro=micro, additional=f"dataver-{__version__}", platform="dataver"
        )
