"""A throw-away Synapse homeserver on loopback, shared by the test suite and scripts/dev.py,
and a pair of them federating (the agencies run their own homeservers).

Synapse lives in its own virtualenv (its dependency set clashes with the bot's), so it is
always run as a subprocess of that interpreter, never imported.

A federating server is named `localhost:<port>` after its TLS federation listener: a name
with an explicit port makes a peer skip `.well-known` and SRV lookups and connect straight
to that port. Its certificate is self-signed and not checked, no key server is trusted (each
server fetches the other's keys itself), and loopback is exempt from the blocklist that
otherwise keeps Synapse from federating with private addresses.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# Every client-facing limiter Synapse 1.163 reads (synapse/config/ratelimiting.py).
# Tests create users, rooms and messages in bursts that the defaults would throttle.
_RELAXED = {"per_second": 10_000, "burst_count": 100_000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _RELAXED,
    "rc_registration": _RELAXED,
    "rc_registration_token_validity": _RELAXED,
    "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
    "rc_admin_redaction": _RELAXED,
    "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
    "rc_joins_per_room": _RELAXED,
    "rc_key_requests": _RELAXED,
    "rc_3pid_validation": _RELAXED,
    "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
    "rc_third_party_invite": _RELAXED,
    "rc_media_create": _RELAXED,
    "rc_presence": {"per_user": _RELAXED},
    "rc_delayed_event_mgmt": _RELAXED,
    "rc_room_creation": _RELAXED,
    "rc_reports": _RELAXED,
    "rc_user_directory": _RELAXED,
    "rc_profile": _RELAXED,
    # What one peer server may ask of this one: requests per window before Synapse delays
    # (sleep_limit) or rejects (reject_limit) them, and how many it serves at once.
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100_000,
        "sleep_delay": 1,
        "reject_limit": 100_000,
        "concurrent": 100,
    },
}


def synapse_python() -> str:
    """Interpreter of the Synapse virtualenv; AEGIS_SYNAPSE_PYTHON lets CI point elsewhere."""
    return os.environ.get("AEGIS_SYNAPSE_PYTHON") or str(REPO_ROOT / ".venv-synapse/bin/python")


def free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race, acceptable for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct unused loopback ports: all held open while the kernel picks."""
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class HomeserverError(RuntimeError):
    """Synapse failed to start or rejected an admin request."""


class Homeserver:
    """One Synapse instance whose data survives stop()/start() so outages can be simulated.

    With `federation_port`, it also federates: it is named `localhost:<federation_port>` and
    serves the federation API (and its signing keys) over TLS on that port.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        server_name: str | None = None,
        port: int | None = None,
        default_rate_limits: bool = False,
        federation_port: int | None = None,
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.federation_port = federation_port
        self.server_name = server_name or (
            f"localhost:{federation_port}" if federation_port else "aegis.test"
        )
        self.default_rate_limits = default_rate_limits
        self.config_path = self.base_dir / "homeserver.yaml"
        self.log_path = self.base_dir / "homeserver.log"
        previous = self._previous_config()
        # A restart must come back on the same port: clients keep the URL.
        previous_port = (previous.get("listeners") or [{}])[0].get("port")
        self.port: int = port or int(previous_port or free_port())
        self._shared_secret: str = previous.get("registration_shared_secret") or secrets.token_hex(
            32
        )
        self._macaroon_secret: str = previous.get("macaroon_secret_key") or secrets.token_hex(32)
        self._form_secret: str = previous.get("form_secret") or secrets.token_hex(32)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _previous_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            return {}
        loaded = yaml.safe_load(self.config_path.read_text())
        return loaded if isinstance(loaded, dict) else {}

    def _write_config(self) -> None:
        """Regenerate the config each start so code changes apply; secrets and keys persist."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "media_store").mkdir(exist_ok=True)
        signing_key = self.base_dir / "signing.key"
        if not signing_key.exists():
            seed = base64.b64encode(os.urandom(32)).decode().rstrip("=")
            signing_key.write_text(f"ed25519 a_aegis {seed}\n")
            signing_key.chmod(0o600)
        log_config = self.base_dir / "log_config.yaml"
        log_config.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "formatters": {
                        "precise": {
                            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                            "%(request)s - %(message)s"
                        }
                    },
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "precise",
                            "filename": str(self.log_path),
                            "encoding": "utf8",
                        }
                    },
                    "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
                    "root": {"level": "INFO", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"{self.url}/",
            "pid_file": str(self.base_dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.base_dir / "homeserver.db")},
            },
            "log_config": str(log_config),
            "media_store_path": str(self.base_dir / "media_store"),
            "signing_key_path": str(signing_key),
            "registration_shared_secret": self._shared_secret,
            "macaroon_secret_key": self._macaroon_secret,
            "form_secret": self._form_secret,
            "enable_registration": False,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "report_stats": False,
            "enable_metrics": False,
            "filter_timeline_limit": 5000,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
        }
        if not self.default_rate_limits:
            config.update(RELAXED_RATE_LIMITS)
        else:
            # Stock limits for what the bot does (messages, joins...), but not for the test
            # setup's logins and registrations: they all come from 127.0.0.1, and the stock
            # login limit (5, then one every ~5 minutes) would stall a second test.
            config.update(
                {key: RELAXED_RATE_LIMITS[key] for key in ("rc_login", "rc_registration")}
            )
        if self.federation_port is not None:
            self._add_federation(config)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _add_federation(self, config: dict[str, Any]) -> None:
        """What a federating server adds to the config above, and nothing else."""
        certificate, key = self._tls_files()
        config["listeners"].append(
            {
                "port": self.federation_port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": True,
                "x_forwarded": False,
                # Also serves the signing keys (/_matrix/key/v2/server) peers ask for.
                "resources": [{"names": ["federation"], "compress": False}],
            }
        )
        config.update(
            {
                "tls_certificate_path": str(certificate),
                "tls_private_key_path": str(key),
                # Self-signed, so peers do not check it. (Synapse refuses to start with
                # unchecked certificates and the default trusted key server, matrix.org.)
                "federation_verify_certificates": False,
                # Synapse blocks private addresses for outgoing federation; the peer is on
                # loopback.
                "ip_range_whitelist": ["127.0.0.1"],
            }
        )

    def _tls_files(self) -> tuple[Path, Path]:
        """A self-signed certificate for `localhost`, made once and kept across restarts."""
        certificate, key_path = self.base_dir / "tls.crt", self.base_dir / "tls.key"
        if certificate.exists() and key_path.exists():
            return certificate, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return certificate, key_path

    def start(self) -> None:
        if self.running:
            return
        self.launch()
        self.wait_until_ready()

    def launch(self) -> None:
        """Starts Synapse without waiting for it, so that two can boot side by side."""
        if self.running:
            return
        self._write_config()
        with self.log_path.open("ab") as log:
            # stdout/stderr only carry startup crashes; the regular log goes via log_config.
            # Synapse itself, not a shell around it: its PID is the one stop() signals.
            self._process = subprocess.Popen(
                [synapse_python(), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal must not hit Synapse first.
            )

    def wait_until_ready(self) -> None:
        """Until the client API answers, and for a federating server the federation one."""
        process = self._process
        if process is None:
            raise HomeserverError("Synapse was not launched")
        probes: list[tuple[str, ssl.SSLContext | None]] = [
            (f"{self.url}/_matrix/client/versions", None)
        ]
        if self.federation_port is not None:
            unchecked = ssl.create_default_context()
            unchecked.check_hostname = False
            unchecked.verify_mode = ssl.CERT_NONE
            probes.append(
                (
                    f"https://127.0.0.1:{self.federation_port}/_matrix/federation/v1/version",
                    unchecked,
                )
            )
        deadline = time.monotonic() + START_TIMEOUT
        while probes and time.monotonic() < deadline:
            if process.poll() is not None:
                raise HomeserverError(
                    f"Synapse exited with {process.returncode}:\n{self._log_tail()}"
                )
            url, context = probes[0]
            try:
                with urllib.request.urlopen(url, timeout=1, context=context):
                    probes.pop(0)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        if probes:
            self.stop()
            raise HomeserverError(
                f"Synapse did not answer within {START_TIMEOUT}s:\n{self._log_tail()}"
            )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    async def register(self, localpart: str, password: str, admin: bool = False) -> str:
        """Shared-secret registration: works with enable_registration off and no captcha."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(endpoint) as resp:
                nonce = (await resp.json())["nonce"]
            mac = hmac.new(self._shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(
                b"\x00".join(
                    [
                        nonce.encode(),
                        localpart.encode(),
                        password.encode(),
                        b"admin" if admin else b"notadmin",
                    ]
                )
            )
            body = {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            async with session.post(endpoint, json=body) as resp:
                data = await resp.json()
                if resp.status == 200:
                    return str(data["user_id"])
                if data.get("errcode") == "M_USER_IN_USE":
                    return self.user_id(localpart)
                raise HomeserverError(f"register {localpart}: {resp.status} {json.dumps(data)}")

    async def login(self, localpart: str, password: str, device_id: str) -> str:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
            "device_id": device_id,
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/_matrix/client/v3/login", json=body) as resp,
        ):
            data = await resp.json()
            if resp.status != 200:
                raise HomeserverError(f"login {localpart}: {resp.status} {data.get('errcode')}")
            return str(data["access_token"])


@dataclass(frozen=True)
class Federation:
    """Two homeservers on loopback that federate: `a` and `b`, each its own agency."""

    a: Homeserver
    b: Homeserver


@contextlib.contextmanager
def federation(base_dir: Path) -> Iterator[Federation]:
    """Starts two fresh federating servers side by side, and stops both however it ends.

    Fresh databases each time: a failed federation attempt leaves backoff state behind, and
    a server's name (its port) may not change under an existing database.
    """
    client_a, federation_a, client_b, federation_b = free_ports(4)
    pair = Federation(
        Homeserver(base_dir / "server-a", port=client_a, federation_port=federation_a),
        Homeserver(base_dir / "server-b", port=client_b, federation_port=federation_b),
    )
    try:
        for server in (pair.a, pair.b):
            server.launch()
        for server in (pair.a, pair.b):
            server.wait_until_ready()
        yield pair
    finally:
        for server in (pair.a, pair.b):
            server.stop()
