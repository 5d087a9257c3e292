"""The floor: a bare matrix-nio client that answers every m.text it sees with an m.notice
echo, replying to it. Nothing else: no parsing, no database, no outbox.

It keeps its sync token in a file so that, restarted after an outage, it picks up where it
stopped, and it asks for up to 5,000 timeline events per room per sync (Synapse's
filter_timeline_limit in tests/support/homeserver.py), so a backlog of 1,000 commands arrives
in one response with no gap to paginate: the cheapest way to see all of it.

    python bench/floor_echo.py --homeserver URL --user-id @u:hs --device-id DEV --state FILE
    (access token in FLOOR_ACCESS_TOKEN)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import nio

FILTER: dict[str, Any] = {
    "room": {"timeline": {"limit": 5000}, "state": {"lazy_load_members": True}},
    "presence": {"not_types": ["*"]},
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--homeserver", required=True)
    parser.add_argument("--user-id", required=True)
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    config = nio.AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False)
    client = nio.AsyncClient(args.homeserver, args.user_id, config=config)
    client.restore_login(args.user_id, args.device_id, os.environ["FLOOR_ACCESS_TOKEN"])
    token: str | None = None
    if args.state.exists():
        token = json.loads(args.state.read_text())["next_batch"]
    try:
        while True:
            response = await client.sync(
                timeout=0 if token is None else 30_000,
                since=token,
                sync_filter=FILTER,
                full_state=token is None,
            )
            if not isinstance(response, nio.SyncResponse):
                print(f"sync failed: {response}", file=sys.stderr, flush=True)
                await asyncio.sleep(1)
                continue
            if token is not None:  # the first sync is history
                for room_id, info in response.rooms.join.items():
                    if info.timeline.limited:
                        print(f"gap in {room_id}: some events not seen", flush=True)
                    for event in info.timeline.events:
                        await echo(client, room_id, event)
            for room_id in response.rooms.invite:
                await client.join(room_id)
            token = response.next_batch
            args.state.write_text(json.dumps({"next_batch": token}))
    finally:
        await client.close()


async def echo(client: nio.AsyncClient, room_id: str, event: nio.Event) -> None:
    if not isinstance(event, nio.RoomMessageText) or event.sender == client.user_id:
        return
    content = {
        "msgtype": "m.notice",
        "body": event.body,
        "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id}},
    }
    response = await client.room_send(room_id, "m.room.message", content)
    if not isinstance(response, nio.RoomSendResponse):
        print(f"send failed: {response}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
