"""Reply models to Matrix message content: HTML with every user-supplied string escaped,
plus the plain-text body clients fall back to."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from html import escape
from typing import Any
from urllib.parse import quote

from commands.replies import Attachment, Item, Reply, RoomRequest, Section, Severity

MESSAGE = "m.room.message"
REACTION = "m.reaction"
# Outbox kinds that are not a single event: the sender uploads or creates, then sends;
# or a membership change the bot makes in one of its rooms.
UPLOAD = "aegis.upload"
CREATE_ROOM = "aegis.create_room"
INVITE = "aegis.invite"
KICK = "aegis.kick"
LEAVE = "aegis.leave"
# A purge's work on the homeserver (bot/erasure.py): one event redacted, or every event of a
# dossier's room.
REDACT = "aegis.redact"
REDACT_ROOM = "aegis.redact_room"

MARKS = {
    Severity.INFO: "",
    Severity.SUCCESS: "✅ ",
    Severity.WARNING: "⚠️ ",
    Severity.ERROR: "❌ ",
}


def to_plain(reply: Reply) -> str:
    parts = [MARKS[reply.severity] + reply.title]
    parts += [f"{name}: {value}" for name, value in reply.fields]
    parts += [f"• {line}" for line in reply.lines]
    for group in reply.groups:
        parts += [group.heading, *(f"• {line}" for line in group.lines)]
    if reply.code:
        parts.append(reply.code)
    for section in reply.sections:
        parts += ["", section.heading]
        for item in section.items:
            parts.append("• " + " — ".join(filter(None, [item.code, item.text])))
            parts += [f"    ◦ {sub}" for sub in item.sub]
    return "\n".join(parts)


# Where each linked reply names its messages: ref -> (room ID, event ID), from the outbox.
Targets = Mapping[str, tuple[str, str]]


def permalink(room_id: str, event_id: str | None = None) -> str:
    """A matrix.to link (to an event if one is given), its parts percent-encoded."""
    parts = [room_id] if event_id is None else [room_id, event_id]
    return "https://matrix.to/#/" + "/".join(quote(part, safe="") for part in parts)


def _linker(reply: Reply, targets: Targets) -> Callable[[str], str]:
    """Escapes a text of the reply, making each linked ID (a whole word) a link to its
    message; the pattern is built once per reply, however many lines it has."""
    urls = {link.text: permalink(*targets[link.ref]) for link in reply.links if link.ref in targets}
    if not urls:
        return escape
    words = "|".join(re.escape(word) for word in sorted(urls, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])(?:{words})(?![\w-])")

    def shown(text: str) -> str:
        html, end = "", 0
        for match in pattern.finditer(text):
            url, word = escape(urls[match.group()]), escape(match.group())
            html += escape(text[end : match.start()]) + f'<a href="{url}">{word}</a>'
            end = match.end()
        return html + escape(text[end:])

    return shown


def to_html(reply: Reply, targets: Targets | None = None) -> str:
    shown = _linker(reply, targets or {})
    html = f"<p><strong>{shown(MARKS[reply.severity] + reply.title)}</strong></p>"
    if reply.fields:
        html += (
            "<p>"
            + "<br>".join(f"<b>{escape(name)}</b>: {shown(value)}" for name, value in reply.fields)
            + "</p>"
        )
    if reply.lines:
        html += "<ul>" + "".join(f"<li>{shown(line)}</li>" for line in reply.lines) + "</ul>"
    for group in reply.groups:
        html += f"<h4>{shown(group.heading)}</h4><ul>"
        html += "".join(f"<li>{shown(line)}</li>" for line in group.lines) + "</ul>"
    if reply.code:
        html += f"<pre><code>{escape(reply.code)}</code></pre>"
    return html + "".join(_section(section) for section in reply.sections)


def _section(section: Section) -> str:
    items = "".join(f"<li>{_item(item)}</li>" for item in section.items)
    return f"<h4>{escape(section.heading)}</h4>" + (f"<ul>{items}</ul>" if items else "")


def _item(item: Item) -> str:
    parts = [f"<code>{escape(item.code)}</code>"] if item.code else []
    if item.text:
        parts.append(escape(item.text))
    html = " — ".join(parts)
    if item.sub:
        html += "<ul>" + "".join(f"<li>{escape(sub)}</li>" for sub in item.sub) + "</ul>"
    return html


def notice(
    reply: Reply,
    in_reply_to: str | None = None,
    mentions: Mapping[str, str] | None = None,
    thread_of: str | None = None,
    thread_root: str | None = None,
    targets: Targets | None = None,
) -> dict[str, Any]:
    """`mentions` maps each user to notify to their display name, shown as a pill; `targets`
    where the reply's links go; `thread_of` names (see `placeholder`) the message whose
    thread this notice goes in; `thread_root` is the event ID of a thread the command was
    typed in: the answer goes in that thread, and clients without threads show it as a reply
    to the command."""
    body, html = to_plain(reply), to_html(reply, targets)
    mentions = mentions or {}
    if mentions:
        # Last, so the title stays what a notification shows first.
        body += "\n" + ", ".join(mentions.values())
        pills = ", ".join(
            f'<a href="{escape(permalink(user))}">{escape(name)}</a>'
            for user, name in mentions.items()
        )
        html += f"<p>{pills}</p>"
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {"user_ids": list(mentions)} if mentions else {},
    }
    if in_reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
    if thread_root:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": in_reply_to or thread_root},
        }
    if thread_of:
        root = placeholder(thread_of)
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": root,
            # Clients without threads show it as a reply to the root instead.
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        }
    return content


def merged(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two notices for one room as one message: the first's relation (the reply to the
    command) stays, the texts follow each other and everyone mentioned by either is."""
    users = [
        *first.get("m.mentions", {}).get("user_ids", []),
        *second.get("m.mentions", {}).get("user_ids", []),
    ]
    return {
        **first,
        "body": first["body"] + "\n\n" + second["body"],
        "formatted_body": first["formatted_body"] + second["formatted_body"],
        "m.mentions": {"user_ids": list(dict.fromkeys(users))} if users else {},
    }


def placeholder(ref: str) -> dict[str, str]:
    """Stands for the event ID of the outbox message named `ref`, filled in at send time:
    a reaction or an edit is committed before its target has been sent."""
    return {"$ref": ref}


def edit(reply: Reply, of_ref: str, targets: Targets | None = None) -> dict[str, Any]:
    new = notice(reply, targets=targets)
    return {
        **new,
        "body": "* " + new["body"],
        "formatted_body": new["formatted_body"],
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": placeholder(of_ref)},
    }


def reaction(key: str, of_ref: str) -> dict[str, Any]:
    return {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": placeholder(of_ref), "key": key}
    }


def file_request(
    attachment: Attachment, in_reply_to: str | None, thread_root: str | None = None
) -> dict[str, Any]:
    return {
        "thread_root": thread_root,
        "filename": attachment.filename,
        "mimetype": attachment.mimetype,
        "data": base64.b64encode(attachment.data).decode("ascii"),
        "in_reply_to": in_reply_to,
    }


def room_request(request: RoomRequest) -> dict[str, Any]:
    return {
        "dossier_ref": request.dossier_ref,
        "name": request.name,
        "topic": request.topic,
        "invite": list(request.invite),
        # Mentioning the invitees also makes the sender wait until the bot knows them as
        # members, so the room key of this first message reaches their devices.
        "welcome": notice(request.welcome, mentions={user: user for user in request.invite}),
    }


def membership_request(user_id: str, reason: str = "") -> dict[str, str]:
    """An invite or a removal of `user_id` in the row's room."""
    return {"user_id": user_id, "reason": reason}
