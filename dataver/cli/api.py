"""serve-api: Pachyderm's gRPC API over the store, for pachyderm_sdk code and pachctl habits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import output
from .session import client
from .text import HostPath

app = typer.Typer()

AddressOpt = Annotated[
    str,
    typer.Option(
        "--address",
        help="HOST:PORT to listen on (pachd's port on loopback by default). Beyond loopback every call must "
        "carry a token from `dataver api-token create` (the SDK's Client(auth_token=...)); on loopback none "
        "is asked for.",
    ),
]
TlsCertOpt = Annotated[
    str | None,
    typer.Option(
        "--tls-cert", help="Serve TLS with this certificate chain (PEM); needs --tls-key.", click_type=HostPath()
    ),
]
TlsKeyOpt = Annotated[
    str | None,
    typer.Option("--tls-key", help="The private key (PEM) of --tls-cert.", click_type=HostPath()),
]
HttpAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--http-address",
        help="HOST:PORT of /health, /health/live and Prometheus /metrics (default: the API's host, its port + 1; "
        "'off' for none).",
    ),
]
LogFormatOpt = Annotated[
    str,
    typer.Option("--log-format", help="text (errors only), or json: one JSON object a line per call on stderr."),
]


def tls_of(cert: str | None, key: str | None):  # noqa: ANN201 (a dataver.api.server.Tls, imported late)
    """The --tls-cert and --tls-key pair, both or neither."""
    from ..api.server import Tls
    from ..errors import InvalidArgument

    if (cert is None) != (key is None):
        raise InvalidArgument("--tls-cert and --tls-key go together: give both (or neither, for plain gRPC)")
    return Tls(Path(cert), Path(key)) if cert is not None and key is not None else None


def describe(host: str, served: object, tls: object) -> str:
    """The line saying where the API, its health and metrics are, and whether tokens are asked for."""
    http = f"; health and metrics at http://{host}:{served.http_port}/" if served.http_port else ""  # type: ignore[attr-defined]
    tokens = "; every call must carry a token" if served.checks_tokens else ""  # type: ignore[attr-defined]
    scheme = "TLS " if tls is not None else ""
    return f"serving Pachyderm's API at {host}:{served.port} ({scheme}gRPC{tokens}){http}"  # type: ignore[attr-defined]


@app.command("serve-api")
def serve_api(
    ctx: typer.Context,
    address: AddressOpt = "127.0.0.1:30650",
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    http_address: HttpAddressOpt = None,
    log_format: LogFormatOpt = "text",
) -> None:
    """Serve Pachyderm's 2.x gRPC API (pachd's services) over the store, in the foreground,
    running the jobs commits trigger; Ctrl-C stops it."""
    from ..api.server import serve

    root = client(ctx).root
    tls = tls_of(tls_cert, tls_key)

    def ready(served: object) -> None:
        host = address.rpartition(":")[0]
        typer.echo(describe(host, served, tls) + " (Ctrl-C stops it)")
        if served.checks_tokens and tls is None:  # type: ignore[attr-defined]
            output.note("note: without --tls-cert and --tls-key, tokens and data cross the network unencrypted")

    serve(root, address, ready, tls=tls, http_address=http_address, log_format=log_format)
