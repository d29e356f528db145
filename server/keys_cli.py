"""`yomitoki keys add|list|remove`: API keys in a keys file, stored as sha256 hashes.

`add` makes a random key, prints it once and writes only its hash, with the
key's scope, name and optional access filter (`--where`, see `server.access`):

    yomitoki keys add hr-team --file keys.txt --scope read --where '{"field": "tags", "eq": "hr"}'
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

import click

from indexer.cli import cli
from indexer.store.where import FilterError, parse_json, to_json
from server.auth import ADMIN_FILTER, SCOPES, KeysFileError, file_keys, file_line_key, hash_line, where_field

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
file_option = click.option("--file", "keys_file", required=True, envvar="YOMITOKI_API_KEYS_FILE",
                           type=click.Path(dir_okay=False, path_type=Path),
                           help="The keys file (what `serve --api-keys-file` reads).")


@cli.group("keys")
def keys_group() -> None:
    """Manage API keys: each with a scope and, optionally, a filter on the documents it sees."""


@keys_group.command("add")
@click.argument("name")
@file_option
@click.option("--scope", type=click.Choice(SCOPES), default="read", show_default=True)
@click.option("--where", "where_text", default=None, metavar="JSON",
              help="Access filter: the key sees only the documents it lets through (indexer.store.where JSON).")
def add_command(name: str, keys_file: Path, scope: str, where_text: str | None) -> None:
    """Make a key NAME; print it once (only its hash is stored)."""
    if not NAME.fullmatch(name):
        raise click.BadParameter(f"{name!r}: a name is ASCII letters, digits, '_', '.', '@' and '-', starting with "
                                 "a letter or digit, at most 64 (e.g. jinji-team)", param_hint="NAME")
    try:
        where = None if where_text is None else parse_json(where_text, "--where")
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from exc
    if where is not None and scope != "read":
        raise click.BadParameter(ADMIN_FILTER, param_hint="--where")
    if any(key.label == name for key in _read(keys_file)):
        raise click.ClickException(f"{keys_file} already has a key named {name!r}: remove it first")
    key = secrets.token_urlsafe(32)
    line = hash_line(key, scope, name) + (f" {where_field(where)}" if where is not None else "")
    text = keys_file.read_text(encoding="utf-8") if keys_file.exists() else ""
    _replace(keys_file, text + ("\n" if text and not text.endswith("\n") else "") + line + "\n")
    click.echo(key)
    click.echo(f"added {scope} key {name!r} to {keys_file}: the key above is shown only now", err=True)


@keys_group.command("list")
@file_option
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON.")
def list_command(keys_file: Path, as_json: bool) -> None:
    """The keys' names, scopes and access filters (never the keys)."""
    if not keys_file.exists():
        raise click.ClickException(f"no keys file at {keys_file}: make one with `yomitoki keys add NAME --file "
                                   f"{keys_file}`")
    rows = [{"name": k.label, "scope": k.scope, "where": None if k.where is None else to_json(k.where)}
            for k in _read(keys_file)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        where = "all documents" if row["where"] is None else json.dumps(row["where"], ensure_ascii=False)
        click.echo(f"{row['name']}\t{row['scope']}\t{where}")


@keys_group.command("remove")
@click.argument("name")
@file_option
def remove_command(name: str, keys_file: Path) -> None:
    """Remove the key NAME from the keys file."""
    lines = keys_file.read_text(encoding="utf-8").splitlines() if keys_file.exists() else []
    try:  # the whole label, as `keys list` shows it: `alice` is not `alice smith`
        kept = [line for number, line in enumerate(lines, 1)
                if getattr(file_line_key(keys_file, number, line), "label", None) != name]
    except KeysFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if len(kept) == len(lines):
        raise click.ClickException(f"{keys_file} has no key named {name!r}")
    _replace(keys_file, "".join(line + "\n" for line in kept))
    click.echo(f"removed key {name!r} from {keys_file}", err=True)


def _replace(keys_file: Path, text: str) -> None:
    """Write the whole file anew and move it into place: a running server never reads half of it.

    A new file is readable by its owner only; an existing one keeps its mode. A symbolic link stays
    one: the file it points to is the one replaced.
    """
    keys_file = keys_file.resolve()
    mode = keys_file.stat().st_mode & 0o777 if keys_file.exists() else 0o600
    scratch = keys_file.with_name(f".{keys_file.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(scratch, mode)
        os.replace(scratch, keys_file)
    finally:
        scratch.unlink(missing_ok=True)


def _read(keys_file: Path) -> list:
    if not keys_file.exists():
        return []
    try:
        return file_keys(keys_file)
    except KeysFileError as exc:
        raise click.ClickException(str(exc)) from exc
