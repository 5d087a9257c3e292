"""`aegis`: run the bot, check a config, migrate the database, verify the audit trail, purge
old personal data, manage partners and roles."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import bot
from bot import at_rest, audit_cli, partner_cli, purge_cli, role_cli
from config import ConfigError, Settings, add_config_option, audit_key, load_settings
from storage.audit import AuditKeyMismatch

EXIT_BAD_CONFIG = 2
EXIT_LEADERSHIP_LOST = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aegis {bot.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run the bot"),
        ("check-config", "validate a config file and list every problem"),
        ("migrate", "upgrade the database schema (as database.migrate_url's role) and exit"),
    ):
        add_config_option(sub.add_parser(name, help=text))
    audit_cli.add_parser(sub)
    partner_cli.add_parser(sub)
    purge_cli.add_parser(sub)
    role_cli.add_parser(sub)
    return parser


def _load(paths: list[Path]) -> Settings | None:
    try:
        return load_settings(*paths)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    # Before any command can create a file: the database, the store, key files, exports.
    at_rest.restrict_umask()
    args = _parser().parse_args(argv)
    settings = _load(args.config)
    if settings is None:
        return EXIT_BAD_CONFIG
    try:
        return _command(settings, args)
    except ConfigError as exc:  # the audit key: read only when a command needs it
        print(exc.report(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    except AuditKeyMismatch as exc:  # a tool on the host with another key than the chain's
        print(f"audit.key: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG


def _command(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "check-config":
        if settings.audit.key_file is not None:
            audit_key(settings)  # a key file that cannot be used stops the start: say so now
        print(f"{' + '.join(map(str, args.config))}: configuration is valid")
        return 0
    if args.command == "partner":
        return asyncio.run(partner_cli.run(settings, args))
    if args.command == "audit":
        return asyncio.run(audit_cli.run(settings, args))
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "purge":
        return asyncio.run(purge_cli.run(settings, args))
    if args.command == "role":
        return asyncio.run(role_cli.run(settings, args))
    return asyncio.run(_run(settings))


async def _run(settings: Settings) -> int:
    from bot.app import Aegis
    from bot.logs import configure
    from bot.store_key import StoreKeyError
    from storage.leader import LeadershipLost

    configure(settings.logging.level, settings.logging.json_format)
    try:
        app = Aegis(settings)
    except ConfigError as exc:  # an unusable key file
        print(exc.report(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    app.install_signal_handlers()
    try:
        await app.run()
    except LeadershipLost:
        # Another instance is active now; a supervisor restarts this one as its standby.
        return EXIT_LEADERSHIP_LOST
    except StoreKeyError as exc:
        print(f"aegis: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except AuditKeyMismatch as exc:
        print(f"audit.key: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return 0


async def _migrate(settings: Settings) -> int:
    """A step of its own, so the migration role's credentials can be given to it alone and
    the running bot, which finds the schema current, never holds them."""
    from storage.db import SCHEMA_HEAD, Database

    db = Database(settings.database.url, migrate_url=settings.database.migrate_url)
    try:
        await db.migrate()
    finally:
        await db.close()
    print(f"database schema at {SCHEMA_HEAD}")
    return 0
