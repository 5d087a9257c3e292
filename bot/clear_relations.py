"""An encrypted event carries its relation twice: in clear, where the homeserver reads it
(the relations API, threads, redaction bookkeeping, every other client), and inside the
ciphertext, which only the members' devices read. nio keeps only the decrypted content (it
copies the clear relation in when the ciphertext has none), so a reaction whose ciphertext
names the prompt while its clear part names nothing, or another event, would count where
nobody else sees it. Each decrypted event is therefore stamped with the relation it had in
clear, and a vote or rationale counts only when the two are the same."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, Event, MegolmEvent

# Where a decrypted event's source keeps the clear m.relates_to of its m.room.encrypted
# envelope (None if it had none). A name no homeserver or client ever sends.
CLEAR_RELATION = "aegis.clear_relates_to"


def keep_clear_relations(client: AsyncClient) -> None:
    """Every decryption nio does for this client (sync, pagination, fetched events and
    `decrypt_event`) goes through its olm machine's `decrypt_megolm_event`; wrap it once the
    machine exists (after login) to stamp each decrypted event. Idempotent."""
    olm = client.olm
    assert olm is not None, "login first: the olm machine is created with the store"
    decrypt = olm.decrypt_megolm_event
    if getattr(decrypt, "keeps_clear_relation", False):
        return

    def decrypt_keeping(event: MegolmEvent, room_id: str | None = None) -> Any:
        decrypted = decrypt(event, room_id)
        if isinstance(decrypted, Event):
            clear = event.source.get("content", {}).get("m.relates_to")
            decrypted.source[CLEAR_RELATION] = clear
        return decrypted

    decrypt_keeping.keeps_clear_relation = True  # type: ignore[attr-defined]
    olm.decrypt_megolm_event = decrypt_keeping


def relation_matches(event: Event) -> bool:
    """For a decrypted event, whether the relation in clear is the decrypted one; True for
    an event that was never encrypted. A decrypted event without the stamp (decrypted by
    a path that bypassed `keep_clear_relations`) cannot be vouched for: False."""
    if not event.decrypted:
        return True
    if CLEAR_RELATION not in event.source:
        return False
    inner = event.source.get("content", {}).get("m.relates_to")
    return bool(event.source[CLEAR_RELATION] == inner)
