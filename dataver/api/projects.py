"""pfs_v2.API's projects, answered through `dataver.Client`."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs

from ..app.client import Client
from ..errors import NotFound
from . import convert
from .clients import Clients
from .rpc import server_stream, unary
from .status import invalid

SERVICE = "pfs_v2.API"
NO_DEFAULTS = "{}"
"""A project's pipeline defaults as InspectProjectV2 shows them: dataver has none to set, so every
pipeline spec says all it means."""


def project_name(project: pfs.Project | None) -> str:
    """The project a request names (checked by the layers below, as the CLI's names are)."""
    if project is None or not project.name:
        raise invalid("the request names no project: set project.name")
    return project.name


class ProjectsService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    def _info(self, client: Client, name: str) -> pfs.ProjectInfo:
        return convert.project_info(client.inspect_project(name))

    @unary(SERVICE, "CreateProject", pfs.CreateProjectRequest)
    def create_project(self, request: pfs.CreateProjectRequest, context: grpc.ServicerContext) -> Empty:
        """With `update`, an existing project takes the new description (pachctl's `update project`)."""
        client, name = self.clients.get(), project_name(request.project)
        if request.update:
            try:
                client.update_project(name, request.description)
                return Empty()
            except NotFound:
                pass
        client.create_project(name, request.description)
        return Empty()

    @unary(SERVICE, "InspectProject", pfs.InspectProjectRequest)
    def inspect_project(self, request: pfs.InspectProjectRequest, context: grpc.ServicerContext) -> pfs.ProjectInfo:
        return self._info(self.clients.get(), project_name(request.project))

    @unary(SERVICE, "InspectProjectV2", pfs.InspectProjectV2Request)
    def inspect_project_v2(
        self, request: pfs.InspectProjectV2Request, context: grpc.ServicerContext
    ) -> pfs.InspectProjectV2Response:
        info = self._info(self.clients.get(), project_name(request.project))
        return pfs.InspectProjectV2Response(info=info, defaults_json=NO_DEFAULTS)

    @server_stream(SERVICE, "ListProject", pfs.ListProjectRequest)
    def list_project(self, request: pfs.ListProjectRequest, context: grpc.ServicerContext) -> Iterator[pfs.ProjectInfo]:
        for info in self.clients.get().list_projects():
            yield convert.project_info(info)

    @unary(SERVICE, "DeleteProject", pfs.DeleteProjectRequest)
    def delete_project(self, request: pfs.DeleteProjectRequest, context: grpc.ServicerContext) -> Empty:
        """Refused while it holds repos or pipelines, unless `force`; `default` is never deleted."""
        self.clients.get().delete_project(project_name(request.project), force=request.force)
        return Empty()
