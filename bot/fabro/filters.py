"""What `GET /api/v1/runs` can be asked, as a value; the only place its query string is written."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunFilter"]


@dataclass(frozen=True)
class RunFilter:
    """A listing of runs. `statuses` are Fabro's buckets, repeated as `status=` (there is no comma form).

    Fabro ignores `include_archived` once any status is given, so it is only sent without one.
    """

    statuses: tuple[str, ...] = ()
    sort: str | None = None
    direction: str | None = None
    limit: int = 20
    offset: int = 0
    parent_id: str | None = None
    include_archived: bool = False

    def params(self) -> list[tuple[str, str]]:
        params = [("status", s) for s in self.statuses]
        if self.sort:
            params.append(("sort", self.sort))
        if self.direction:
            params.append(("direction", self.direction))
        params.append(("page[limit]", str(self.limit)))
        params.append(("page[offset]", str(self.offset)))
        if self.parent_id:
            params.append(("parent_id", self.parent_id))
        if self.include_archived and not self.statuses:
            params.append(("include_archived", "true"))
        return params
