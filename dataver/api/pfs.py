"""pfs_v2.API: repos, branches, commits and files, answered through `dataver.Client`."""

from __future__ import annotations

import grpc
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs

from . import convert
from .clients import Clients
from .names import repo_name
from .rpc import server_stream, unary

SERVICE = "pfs_v2.API"


class PfsService:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    # ---- repos ---------------------------------------------------------------------------

    @unary(SERVICE, "CreateRepo", pfs.CreateRepoRequest)
    def create_repo(self, request: pfs.CreateRepoRequest, context: grpc.ServicerContext) -> Empty:
        self.clients.get().create_repo(repo_name(request.repo), request.description)
        return Empty()

    @unary(SERVICE, "InspectRepo", pfs.InspectRepoRequest)
    def inspect_repo(self, request: pfs.InspectRepoRequest, context: grpc.ServicerContext) -> pfs.RepoInfo:
        return convert.repo_info(self.clients.get().inspect_repo(repo_name(request.repo)))

    @server_stream(SERVICE, "ListRepo", pfs.ListRepoRequest)
    def list_repo(self, request: pfs.ListRepoRequest, context: grpc.ServicerContext):
        projects = {p.name for p in request.projects}
        for info in self.clients.get().list_repos(all_projects=True):
            if not projects or convert.repo(info.name).project.name in projects:
                yield convert.repo_info(info)

    @unary(SERVICE, "DeleteRepo", pfs.DeleteRepoRequest)
    def delete_repo(self, request: pfs.DeleteRepoRequest, context: grpc.ServicerContext) -> pfs.DeleteRepoResponse:
        self.clients.get().delete_repo(repo_name(request.repo), force=request.force)
        return pfs.DeleteRepoResponse(deleted=True)
