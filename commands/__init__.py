"""Aegis's chat commands: declared once, parsed, authorized and documented by the framework.

A concern's module declares its commands with `@command`; adding the module to `registry`
below is all it takes to make them dispatchable and listed in `!help`.
"""

from commands import (
    audit,
    core,
    dossier,
    early_warning,
    export,
    measure,
    meeting,
    remind,
    role,
    threat,
)
from commands.arguments import Kind, Opt, Rest, Spelled, UserId, register_type
from commands.context import Context
from commands.declaration import Command, Registry, command
from commands.dispatcher import Dispatcher
from commands.errors import ArgumentError
from commands.replies import Announcement, Reply, RoomKey, Severity

registry = Registry.from_modules(
    core, dossier, threat, measure, meeting, remind, export, role, early_warning, audit
)

__all__ = [
    "Announcement",
    "ArgumentError",
    "Command",
    "Context",
    "Dispatcher",
    "Kind",
    "Opt",
    "Registry",
    "Reply",
    "Rest",
    "RoomKey",
    "Severity",
    "Spelled",
    "UserId",
    "command",
    "register_type",
    "registry",
]
