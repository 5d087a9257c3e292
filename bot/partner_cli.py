"""`aegis partner …`: register the companies of the early-warning network and manage their
tokens. Run by an operator on the server, so it is audited as `cli:<login>`."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from urllib.parse import urlsplit

import bot
from bot.app import access_policy, open_database, policy
from config import Settings, add_config_option
from storage.store import Store
from workflow import RuntimeInfo, Workflow
from workflow.early_warning_model import NewPartner, Sector
from workflow.errors import Refused


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    partner = sub.add_parser("partner", help="early-warning partner companies and their tokens")
    verbs = partner.add_subparsers(dest="partner_command", required=True)
    add = verbs.add_parser("add", help="register a company; prints its API token once")
    add.add_argument("name", help="the organisation's name")
    add.add_argument("--sector", required=True, choices=[s.value for s in Sector])
    add.add_argument("--webhook", type=_webhook_url, help="https:// URL warnings are POSTed to")
    verbs.add_parser("list", help="every partner, revoked ones marked")
    revoke = verbs.add_parser("revoke", help="stop a partner's token at once")
    revoke.add_argument("id", type=int)
    rotate = verbs.add_parser("rotate", help="a new API token; the old one stops at once")
    rotate.add_argument("id", type=int)
    rotate.add_argument(
        "--webhook-secret", action="store_true", help="also a new webhook signing secret"
    )
    for verb in (add, revoke, rotate, verbs.choices["list"]):
        add_config_option(verb)


def _webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(text) > 500:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL")
    return text


async def run(settings: Settings, args: argparse.Namespace) -> int:
    db = open_database(settings)
    actor = f"cli:{getpass.getuser()}"
    try:
        await db.migrate()
        async with db.transaction() as session:
            rules = Workflow(
                Store(session),
                datetime.now(UTC),
                access_policy(settings),
                RuntimeInfo(bot.__version__, datetime.now(UTC)),
                policy(settings),
            ).early_warning
            verb = args.partner_command
            if verb == "add":
                _secrets(
                    await rules.add_partner(actor, args.name, Sector(args.sector), args.webhook)
                )
            elif verb == "rotate":
                _secrets(await rules.rotate(actor, args.id, args.webhook_secret))
            elif verb == "revoke":
                revoked = await rules.revoke(actor, args.id)
                print(f"partner {revoked.id} ({revoked.name}) revoked")
            else:
                for p in await rules.partners():
                    state = "revoked" if p.revoked_at else "active"
                    print(f"{p.id}\t{p.name}\t{p.sector}\t{state}\t{p.webhook_url or '-'}")
    except Refused as exc:
        print(f"aegis partner {args.partner_command}: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    return 0


def _secrets(new: NewPartner) -> None:
    partner = new.partner
    print(f"partner {partner.id}: {partner.name} ({partner.sector})")
    print(f"API token (shown once, give it to the partner): {new.token}")
    print(f"webhook signing secret: {new.webhook_secret}")
