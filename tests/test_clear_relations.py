"""The relation in clear of an encrypted event against the decrypted one: nio's decryption
path stamped, and each way the two can differ told apart (no homeserver needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from nio import Event, ReactionEvent

from bot.clear_relations import CLEAR_RELATION, keep_clear_relations, relation_matches

PROMPT = {"rel_type": "m.annotation", "event_id": "$prompt", "key": "✅"}
ELSEWHERE = {"rel_type": "m.annotation", "event_id": "$other", "key": "✅"}


def decrypt_like_nio(event: Any, room_id: str | None = None) -> Event:
    """What nio's olm machine returns: the decrypted payload, with the clear relation
    copied in only when the ciphertext had none."""
    inner: dict[str, Any] = dict(event.inner)
    content = dict(inner.get("content", {}))
    if "m.relates_to" not in content and "m.relates_to" in event.source["content"]:
        content["m.relates_to"] = event.source["content"]["m.relates_to"]
    decrypted = ReactionEvent.from_dict(
        {
            "type": "m.reaction",
            "event_id": "$reaction",
            "sender": "@ap:aegis.test",
            "origin_server_ts": 1,
            "content": content,
        }
    )
    decrypted.decrypted = True
    return decrypted


def client() -> Any:
    olm = SimpleNamespace(decrypt_megolm_event=decrypt_like_nio)
    stub = SimpleNamespace(olm=olm)
    keep_clear_relations(stub)
    keep_clear_relations(stub)  # a second call wraps nothing twice
    return stub


def encrypted(clear: dict[str, Any] | None, inner: dict[str, Any] | None) -> Any:
    outer: dict[str, Any] = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "…"}
    if clear is not None:
        outer["m.relates_to"] = clear
    payload = {"m.relates_to": inner} if inner is not None else {}
    return SimpleNamespace(source={"content": outer}, inner={"content": payload})


@pytest.mark.parametrize(
    ("clear", "inner", "matches"),
    [
        (PROMPT, PROMPT, True),  # nio and most clients: the relation in both places
        (PROMPT, None, True),  # Element: the relation in clear only
        (None, PROMPT, False),  # hidden from the homeserver: only the devices see it
        (ELSEWHERE, PROMPT, False),  # the homeserver sees another event
    ],
)
def test_a_decrypted_event_keeps_its_clear_relation(
    clear: dict[str, Any] | None, inner: dict[str, Any] | None, matches: bool
) -> None:
    decrypted = client().olm.decrypt_megolm_event(encrypted(clear, inner))
    assert decrypted.source[CLEAR_RELATION] == clear
    assert relation_matches(decrypted) is matches


def test_unencrypted_events_match_and_unstamped_decrypted_ones_do_not() -> None:
    plain = ReactionEvent.from_dict(
        {
            "type": "m.reaction",
            "event_id": "$plain",
            "sender": "@ap:aegis.test",
            "origin_server_ts": 1,
            "content": {"m.relates_to": PROMPT},
        }
    )
    assert relation_matches(plain)
    plain.decrypted = True  # decrypted by a path that bypassed the stamp: not vouched for
    assert not relation_matches(plain)
