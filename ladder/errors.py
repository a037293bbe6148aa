"""The one error type users see: a single line naming the field and the fix."""


class LadderError(Exception):
    """Bad input. The CLI prints `error: <message>` on one line and exits with status 2."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise LadderError(message)
