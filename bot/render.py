"""Reply models to Matrix message content: HTML with every user-supplied string escaped,
plus the plain-text body clients fall back to."""

from __future__ import annotations

import base64
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
    if reply.code:
        parts.append(reply.code)
    for section in reply.sections:
        parts += ["", section.heading]
        for item in section.items:
            parts.append("• " + " — ".join(filter(None, [item.code, item.text])))
            parts += [f"    ◦ {sub}" for sub in item.sub]
    return "\n".join(parts)


def to_html(reply: Reply) -> str:
    html = f"<p><strong>{escape(MARKS[reply.severity] + reply.title)}</strong></p>"
    if reply.fields:
        html += (
            "<p>"
            + "<br>".join(f"<b>{escape(name)}</b>: {escape(value)}" for name, value in reply.fields)
            + "</p>"
        )
    if reply.lines:
        html += "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in reply.lines) + "</ul>"
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
    mentions: tuple[str, ...] = (),
    thread_of: str | None = None,
) -> dict[str, Any]:
    """`thread_of` names (see `placeholder`) the message whose thread this notice goes in."""
    body, html = to_plain(reply), to_html(reply)
    if mentions:
        body = " ".join(mentions) + "\n" + body
        pills = " ".join(
            f'<a href="https://matrix.to/#/{quote(user)}">{escape(user)}</a>' for user in mentions
        )
        html = f"<p>{pills}</p>{html}"
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {"user_ids": list(mentions)} if mentions else {},
    }
    if in_reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
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


def placeholder(ref: str) -> dict[str, str]:
    """Stands for the event ID of the outbox message named `ref`, filled in at send time:
    a reaction or an edit is committed before its target has been sent."""
    return {"$ref": ref}


def edit(reply: Reply, of_ref: str) -> dict[str, Any]:
    new = notice(reply)
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


def file_request(attachment: Attachment, in_reply_to: str | None) -> dict[str, Any]:
    return {
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
        "welcome": notice(request.welcome, mentions=request.invite),
    }


def membership_request(user_id: str, reason: str = "") -> dict[str, str]:
    """An invite or a removal of `user_id` in the row's room."""
    return {"user_id": user_id, "reason": reason}
