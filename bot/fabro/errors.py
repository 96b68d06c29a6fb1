"""The errors a Fabro call can end in; each carries what a person needs to trace it.

    FabroError                 anything that went wrong talking to Fabro
    ├── FabroUnavailable       no usable answer: connection refused, timeout, 5xx, a redirect
    ├── FabroUnreadable        an answer that is not what the API documents (a login page, `{}`)
    ├── FabroUnauthorized      401/403: the token is missing, wrong or expired
    ├── FabroNotFound          404: no such run (or question)
    └── FabroRejected          400/415/422 and other 4xx: Fabro refused the request
        ├── AmbiguousRun       400: more than one run id starts with the prefix given
        └── FabroConflict      409: the run is no longer in a state that allows it

`request_id` is Fabro's `x-request-id` when Fabro answered, so users can find the
call in Fabro's logs; when no answer came (a timeout, a refused connection) it is the
id the bot made up for the call (`ours` is True), findable only in the bot's logs.
`detail` is Fabro's own words (JSON `detail` or plain text), scrubbed of credentials by
the client, so it is safe to show.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRun",
    "FabroConflict",
    "FabroError",
    "FabroNotFound",
    "FabroRejected",
    "FabroUnauthorized",
    "FabroUnavailable",
    "FabroUnreadable",
]


class FabroError(Exception):
    """Base of every Fabro failure."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        ours: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.request_id = request_id
        self.code = code
        self.ours = ours

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, detail={self.detail!r})"
        )


class FabroUnavailable(FabroError):
    """Fabro could not be reached, did not answer in time, or answered 5xx."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
        ours: bool = False,
        timed_out_after: float | None = None,
    ) -> None:
        super().__init__(detail, status=status, request_id=request_id, code=code, ours=ours)
        self.timed_out_after = timed_out_after


class FabroUnauthorized(FabroError):
    """Fabro refused the API token (401) or its permissions (403)."""


class FabroNotFound(FabroError):
    """Fabro has no such run or question (404)."""


class FabroRejected(FabroError):
    """Fabro refused the request as invalid (400, 415, 422, other 4xx)."""


class AmbiguousRun(FabroRejected):
    """A run id prefix that more than one run starts with (Fabro's 400), with the runs it could be."""

    def __init__(self, detail: str, *, candidates: list[tuple[str, str]], request_id: str | None = None) -> None:
        super().__init__(detail, status=400, request_id=request_id)
        self.candidates = candidates  # (run id, title), newest first: what a person chooses from


class FabroConflict(FabroRejected):
    """Fabro refused because the run moved on (409): already answered, not pending, terminal."""


class FabroUnreadable(FabroError):
    """Fabro (or something in front of it) answered, but not with what the API documents."""
