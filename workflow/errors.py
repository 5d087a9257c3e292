"""A refusal by the rules: shown to the sender as is, and nothing is written."""


class Refused(Exception):
    """Raised before any write, so a refused command leaves the database as it was. `lines`
    are shown under the message: one per thing that stands in the way, say."""

    def __init__(self, message: str, lines: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.lines = lines


class NotFound(Refused):
    """A well-formed ID that names nothing. The sender is told the closest IDs that do
    exist (workflow/refs.py), never an example that might not."""

    def __init__(self, message: str, ref: str) -> None:
        super().__init__(message)
        self.ref = ref
