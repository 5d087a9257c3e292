"""A scripted Matrix user for end-to-end tests: talks to the bot the way Element would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nio
from nio.api import Api
from nio.crypto.attachments import decrypt_attachment

from tests.support.homeserver import Homeserver

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 5_000
# Large enough that a burst of bot messages between two syncs never produces a gap.
SYNC_FILTER: dict[str, Any] = {"room": {"timeline": {"limit": 1000}}}
MEGOLM = {"algorithm": "m.megolm.v1.aes-sha2"}


class MatrixUser:
    """An e2e-capable user with a background sync that records every timeline event.

    Undecryptable events are kept as nio.MegolmEvent and retried on each read, so a room key
    that arrives late still turns them into readable events.
    """

    def __init__(self, client: nio.AsyncClient) -> None:
        self.client = client
        self._events: dict[str, list[nio.Event]] = {}
        self._changed = asyncio.Condition()
        # keys_query/keys_claim are not re-entrant in nio: the sync loop and say() share them.
        self._keys_lock = asyncio.Lock()
        self._sync_task: asyncio.Task[None] | None = None

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    @classmethod
    async def create(
        cls,
        hs: Homeserver,
        localpart: str,
        store_dir: Path,
        password: str | None = None,
        *,
        admin: bool = False,
    ) -> MatrixUser:
        password = password or f"pw-{localpart}"
        user_id = await hs.register(localpart, password, admin=admin)
        # Device ids must differ across users: nio's olm machine skips any device whose id
        # equals its own, whoever owns it, and would never send that user a room key.
        device_id = "DRIVER-" + localpart.upper()
        await asyncio.to_thread(store_dir.mkdir, parents=True, exist_ok=True)
        config = nio.AsyncClientConfig(
            encryption_enabled=True,
            store_sync_tokens=False,
            # Keep retry waits short so a restarted homeserver is picked up quickly.
            max_timeout_retry_wait_time=2,
        )
        client = nio.AsyncClient(
            hs.url, user_id, device_id=device_id, store_path=str(store_dir), config=config
        )
        login = await client.login(password, device_name="aegis test driver")
        if not isinstance(login, nio.LoginResponse):
            await client.close()
            raise RuntimeError(f"login failed for {user_id}: {login}")
        user = cls(client)
        client.add_event_callback(user._on_event, nio.Event)
        await user._sync_once(full_state=True)
        user._sync_task = asyncio.create_task(user._sync_loop(), name=f"sync {user_id}")
        return user

    async def _on_event(self, room: nio.MatrixRoom, event: nio.Event) -> None:
        self._events.setdefault(room.room_id, []).append(event)
        async with self._changed:
            self._changed.notify_all()

    async def _sync_once(self, full_state: bool = False) -> None:
        response = await self.client.sync(
            timeout=0 if full_state else SYNC_TIMEOUT_MS,
            sync_filter=SYNC_FILTER,
            full_state=full_state,
        )
        if isinstance(response, nio.SyncError):
            raise RuntimeError(f"sync failed: {response.message}")
        await self._maintain_keys()
        async with self._changed:
            self._changed.notify_all()

    async def _maintain_keys(self) -> None:
        async with self._keys_lock:
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
            await self.client.send_to_device_messages()

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the homeserver may be down on purpose; keep trying
                log.debug("sync of %s failed: %s", self.user_id, exc)
                await asyncio.sleep(0.5)

    async def _wait(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            raise TimeoutError(
                f"{self.user_id}: timed out after {seconds}s waiting for {what}"
            ) from None

    async def create_room(
        self, name: str, invite: Sequence[str] = (), encrypted: bool = True
    ) -> str:
        initial_state = (
            [{"type": "m.room.encryption", "state_key": "", "content": MEGOLM}] if encrypted else []
        )
        response = await self.client.room_create(
            name=name,
            invite=list(invite),
            initial_state=initial_state,
            preset=nio.RoomPreset.private_chat,
        )
        if not isinstance(response, nio.RoomCreateResponse):
            raise RuntimeError(f"room_create failed: {response}")
        await self._wait(lambda: response.room_id in self.client.rooms, 30, "the new room")
        return str(response.room_id)

    async def join(self, room_id: str) -> None:
        response = await self.client.join(room_id)
        if not isinstance(response, nio.JoinResponse):
            raise RuntimeError(f"join failed: {response}")
        await self._wait(lambda: room_id in self.client.rooms, 30, f"joining {room_id}")

    async def invite(self, room_id: str, user_id: str) -> None:
        response = await self.client.room_invite(room_id, user_id)
        if not isinstance(response, nio.RoomInviteResponse):
            raise RuntimeError(f"invite failed: {response}")

    async def wait_for_member(self, room_id: str, user_id: str, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until user_id has joined: only then will our room keys be shared with it."""

        def joined() -> bool:
            room = self.client.rooms.get(room_id)
            return room is not None and user_id in room.users and not room.users[user_id].invited

        await self._wait(joined, timeout, f"{user_id} to join {room_id}")

    async def _prepare_encryption(self, room_id: str) -> None:
        """Refresh members and devices so the megolm session reaches every current device.

        nio only refreshes members when it never did, so a bot that joined after our last
        send would otherwise miss the key and see an undecryptable message.
        """
        await self.client.joined_members(room_id)
        # A member whose devices we queried before it uploaded any (the bot, invited before
        # its first login) stays deviceless until our sync sees its device-list change; a
        # send in between would leave it without the key. Ask again for such members.
        if self.client.olm:
            blind = {
                user
                for user in self.client.rooms[room_id].users
                if not list(self.client.device_store.active_user_devices(user))
            }
            self.client.olm.add_changed_users(blind)
        await self._maintain_keys()
        if self.client.olm and self.client.olm.should_share_group_session(room_id):
            await self.client.share_group_session(room_id, ignore_unverified_devices=True)

    async def _send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        room = self.client.rooms.get(room_id)
        if room is None:
            raise RuntimeError(f"{self.user_id} is not in {room_id}")
        if room.encrypted:
            await self._prepare_encryption(room_id)
        response = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        if not isinstance(response, nio.RoomSendResponse):
            raise RuntimeError(f"send failed: {response}")
        return str(response.event_id)

    async def say(self, room_id: str, text: str) -> str:
        return await self._send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    async def say_in_thread(self, room_id: str, root: str, text: str) -> str:
        """What Element sends for a message typed in the thread under `root`."""
        relation = {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        }
        body = {"msgtype": "m.text", "body": text, "m.relates_to": relation}
        return await self._send(room_id, "m.room.message", body)

    async def edit(self, room_id: str, event_id: str, text: str) -> str:
        """What Element sends when the user edits their message `event_id` to `text`."""
        body = {
            "msgtype": "m.text",
            "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return await self._send(room_id, "m.room.message", body)

    async def open_direct_chat(self, user_id: str) -> str:
        """An encrypted direct chat with `user_id`, invited as Element does (`is_direct`)."""
        response = await self.client.room_create(
            is_direct=True,
            invite=[user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": MEGOLM}],
            preset=nio.RoomPreset.trusted_private_chat,
        )
        if not isinstance(response, nio.RoomCreateResponse):
            raise RuntimeError(f"room_create failed: {response}")
        await self._wait(lambda: response.room_id in self.client.rooms, 30, "the direct chat")
        return str(response.room_id)

    async def react(self, room_id: str, event_id: str, key: str, encrypted: bool = False) -> str:
        """Annotate an event; encrypted=True mimics Element, which encrypts reactions.

        nio's room_send never encrypts m.reaction, so the encrypted variant encrypts by hand
        (nio copies m.relates_to into the clear part, as the spec requires) and sends raw.
        """
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        if not encrypted:
            return await self._send(room_id, "m.reaction", content)
        return await self.react_sealed(room_id, event_id, key, content["m.relates_to"])

    async def react_sealed(
        self, room_id: str, event_id: str, key: str, in_clear: dict[str, Any] | None
    ) -> str:
        """An encrypted reaction on `event_id` whose envelope shows `in_clear` as its relation
        (None: no relation at all): what a client that hides or forges the relation the
        homeserver sees would send. Only the room's members' devices can read the real one."""
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        await self._prepare_encryption(room_id)
        event_type, encrypted_content = self.client.encrypt(room_id, "m.reaction", content)
        encrypted_content.pop("m.relates_to", None)
        if in_clear is not None:
            encrypted_content["m.relates_to"] = in_clear
        # A fresh transaction ID each time: with none, every raw send of this user to the
        # room would be the homeserver's replay of the first one.
        method, path, data = Api.room_send(
            self.client.access_token, room_id, event_type, encrypted_content, uuid.uuid4()
        )
        response = await self.client._send(nio.RoomSendResponse, method, path, data, (room_id,))
        if not isinstance(response, nio.RoomSendResponse):
            raise RuntimeError(f"encrypted reaction failed: {response}")
        return str(response.event_id)

    async def redact(self, room_id: str, event_id: str) -> None:
        response = await self.client.room_redact(room_id, event_id)
        if not isinstance(response, nio.RoomRedactResponse):
            raise RuntimeError(f"redact failed: {response}")

    def events(self, room_id: str) -> list[nio.Event]:
        received = self._events.get(room_id, [])
        for index, event in enumerate(received):
            if isinstance(event, nio.MegolmEvent):
                with contextlib.suppress(nio.EncryptionError):
                    received[index] = self.client.decrypt_event(event)
        return list(received)

    async def wait_for(
        self,
        room_id: str,
        predicate: Callable[[nio.Event], bool],
        timeout: float = 30,  # noqa: ASYNC109 (a per-wait deadline reads better in tests)
    ) -> nio.Event:
        """First event matching predicate; still-undecryptable events are never offered to it."""
        found: list[nio.Event] = []

        def check() -> bool:
            found[:] = [
                event
                for event in self.events(room_id)
                if not isinstance(event, nio.MegolmEvent) and predicate(event)
            ]
            return bool(found)

        await self._wait(check, timeout, f"a matching event in {room_id}")
        return found[0]

    async def reply_to(self, room_id: str, event_id: str, timeout: float = 30) -> nio.Event:  # noqa: ASYNC109
        """First m.notice replying to event_id: how the bot answers a command."""
        return await self.wait_for(
            room_id, lambda event: is_notice(event) and in_reply_to(event) == event_id, timeout
        )

    def replies(self, room_id: str, sender: str | None = None) -> list[nio.Event]:
        """Notices received so far, optionally only those from sender (typically the bot)."""
        return [
            event
            for event in self.events(room_id)
            if is_notice(event) and (sender is None or event.sender == sender)
        ]

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        await self.client.close()


def content(event: nio.Event) -> dict[str, Any]:
    """Plaintext content; for decrypted events nio's source is the decrypted payload."""
    return dict(event.source.get("content", {}))


def is_notice(event: nio.Event) -> bool:
    return content(event).get("msgtype") == "m.notice"


def in_reply_to(event: nio.Event) -> str | None:
    relates = content(event).get("m.relates_to") or {}
    reply = relates.get("m.in_reply_to") or {}
    event_id = reply.get("event_id")
    return str(event_id) if event_id else None


async def download(user: MatrixUser, event: nio.Event) -> bytes:
    """The bytes of an m.file event, decrypted when the room is encrypted."""
    body = content(event)
    encrypted = body.get("file")
    url = encrypted["url"] if encrypted else body["url"]
    response = await user.client.download(mxc=url)
    if not isinstance(response, nio.DownloadResponse):
        raise RuntimeError(f"download failed: {response}")
    if not encrypted:
        return bytes(response.body)
    return decrypt_attachment(
        response.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"], encrypted["iv"]
    )
