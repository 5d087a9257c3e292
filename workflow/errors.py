"""A refusal by the rules: shown to the sender as is, and nothing is written."""


class Refused(Exception):
    """Raised before any write, so a refused command leaves the database as it was."""
