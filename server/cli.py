"""The full `yomitoki` command: the indexer's commands plus the server's."""

from __future__ import annotations

from pathlib import Path

import click

from indexer.cli import cli, domain_errors, index_option
from server.settings import ServerSettings


@cli.command("serve")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--model", default=None, envvar="YOMITOKI_MODEL",
              help="Embedding model; default: the one the index was built with.")
@click.option("--threads", default=2, show_default=True, help="Threads for model inference.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve_command(index_dir: Path, host: str, port: int, model: str | None, threads: int,
                  log_level: str) -> None:
    """Serve the index over HTTP (OpenAPI page at /schema)."""
    import torch
    import uvicorn

    from server.app import create_app, open_services

    torch.set_num_threads(threads)
    settings = ServerSettings(index_dir=index_dir, model=model, host=host, port=port, threads=threads)
    with domain_errors():
        services = open_services(settings)  # fail fast, before binding the port
    uvicorn.run(create_app(settings, services), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=10)


def main() -> None:
    cli()
