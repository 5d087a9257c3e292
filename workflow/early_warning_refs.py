"""The outbox name of a sector warning's approval prompt, shared by the approval rules (which
route its reactions) and the early-warning rules (which post it)."""


def warning_ref(warning_id: int) -> str:
    return f"warning:W-{warning_id}"
