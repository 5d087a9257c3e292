"""Login on a fixed device, keeping the access token and the E2EE store between runs.

A fixed device ID keeps the encryption keys valid and lets the homeserver de-duplicate a
send retried after a crash (transaction IDs are scoped to the device)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LoginResponse, WhoamiResponse

from config.settings import MatrixSettings

log = logging.getLogger(__name__)

CREDENTIALS = "credentials.json"


class LoginFailed(Exception):
    pass


def make_client(settings: MatrixSettings, store_key: str) -> AsyncClient:
    """`store_key` encrypts the keys in the E2EE store (see bot/store_key.py)."""
    settings.store_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = AsyncClientConfig(
        encryption_enabled=True,
        pickle_key=store_key,
        store_sync_tokens=False,  # the database owns the sync token, written after handling
        max_timeouts=2,  # hand connection failures back to our own bounded backoff
        request_timeout=60,
    )
    return AsyncClient(
        settings.homeserver,
        settings.user_id,
        device_id=settings.device_id,
        store_path=str(settings.store_path),
        config=config,
    )


def _saved_token(path: Path, settings: MatrixSettings) -> str | None:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("user_id") != settings.user_id or saved.get("device_id") != settings.device_id:
        return None
    token = saved.get("access_token")
    return token if isinstance(token, str) else None


def _save_token(path: Path, settings: MatrixSettings, token: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"user_id": settings.user_id, "device_id": settings.device_id, "access_token": token},
            handle,
        )
    tmp.replace(path)


async def login(client: AsyncClient, settings: MatrixSettings) -> None:
    """Prefer a token (saved, then configured); fall back to the password on the same device."""
    path = settings.store_path / CREDENTIALS
    candidates = [_saved_token(path, settings)]
    if settings.access_token is not None:
        candidates.append(settings.access_token.get_secret_value())
    for token in filter(None, candidates):
        client.restore_login(settings.user_id, settings.device_id, token)
        answer = await client.whoami()
        if isinstance(answer, WhoamiResponse):
            _save_token(path, settings, token)
            break
        if getattr(answer, "status_code", None) not in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise ConnectionError(f"homeserver not answering whoami: {answer}")
        log.warning("stored access token rejected; trying the next credential")
    else:
        if settings.password is None:
            raise LoginFailed("the access token was rejected and no password is configured")
        response = await client.login(
            settings.password.get_secret_value(), device_name=settings.device_name
        )
        if not isinstance(response, LoginResponse):
            raise LoginFailed(f"login refused: {getattr(response, 'message', response)}")
        _save_token(path, settings, response.access_token)
    if client.should_upload_keys:
        await client.keys_upload()
    log.info("logged in as %s on device %s", settings.user_id, settings.device_id)
