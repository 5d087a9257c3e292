"""A refusal by the rules: shown to the sender as is, and nothing is written."""


class Refused(Exception):
    """Raised before any write, so a refused command leaves the database as it was. `lines`
    are shown under the message: one per thing that stands in the way, say."""

    def __init__(self, message: str, lines: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.lines = lines
