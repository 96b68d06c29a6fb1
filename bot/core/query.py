"""`/runs` text → what was asked: a run query, a single run, help, or a usage error.  [pure]

Grammar (whitespace-separated words, any order, case-insensitive):

    <bucket>…            pending runnable initializing running blocked succeeded failed
                         archived removing, or the aliases `active` and `done`
    sort:<key> asc|desc  created_at updated_at status elapsed repo title workflow changes size
    limit:<1-100>        runs per page (default 10)
    page:<n>             1-based page
    parent:<run-id>      direct children of a run
    all                  include archived runs (only when no bucket is named)
    mine                 the caller's runs (the owner rule), from the bot's index
    by:<login>|by:me     started by that GitHub login (Fabro's `created_by`); `-by:` excludes
    repo:<owner/name>    in that repository; `-repo:` excludes
    workflow:<name>      of that workflow; `-workflow:` excludes
    <run-id or prefix>   one run, in detail
    help                 the grammar

and, for channel alerts (the first word decides):

    subscribe [failed] [questions] [approvals] [cancelled] [succeeded] [pr] [cost] [repo:<owner/name>] [workflow:<name>]
              [label:<k=v>] [by:<login>|by:me] [-by:…] [-repo:…] [-workflow:…]…
    subscriptions
    unsubscribe <id>…|all

to look into one run:

    changes <run-id> · cost <run-id> · logs <run-id> · preview <run-id> <port>

and for muting one run in this conversation (a DM mutes only what comes to the DM):

    mute <run-id> [1h|1d|<n>m|<n>h|<n>d|end]   (default: until the run ends)
    unmute <run-id>  ·  muted

and for the caller's own account:

    link <github-login>  ·  unlink [<github-login>]  ·  whoami
    notify [questions] [approvals] [failed] [succeeded] | off
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bot.fabro.filters import RunFilter
from bot.fabro.models import ACTIVE_BUCKETS, BUCKETS, Run

__all__ = [
    "DEFAULT_LIMIT",
    "EXAMPLES",
    "GRAMMAR",
    "INSPECT_WORDS",
    "MAX_LIMIT",
    "MAX_NARROW",
    "MAX_OFFSET",
    "SORT_KEYS",
    "STATS_WINDOWS",
    "STATUS_ALIASES",
    "FollowRun",
    "Help",
    "Inspect",
    "Link",
    "MuteRun",
    "Muted",
    "Narrow",
    "NewWork",
    "Notify",
    "Parsed",
    "RunLookup",
    "RunQuery",
    "Setup",
    "Start",
    "Stats",
    "Subscribe",
    "Subscriptions",
    "Summary",
    "Unmute",
    "Unsubscribe",
    "UsageError",
    "WhoAmI",
    "parse",
    "valid_login",
    "valid_repo",
    "valid_workflow",
]

DEFAULT_LIMIT = 10
INSPECT_WORDS = ("changes", "cost", "logs", "preview")
MAX_PREVIEW_PORT = 65535
MAX_LIMIT = 100
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000  # Fabro clamps page[offset] here
MAX_NARROW = 8  # narrowing words in one listing: its paging buttons must still fit Slack's 2,000 characters
MAX_NARROW_VALUE = 100

STATUS_ALIASES: dict[str, tuple[str, ...]] = {
    **{bucket: (bucket,) for bucket in BUCKETS},
    "active": ACTIVE_BUCKETS,
    "done": ("succeeded", "failed"),
}

# Fabro's sort keys, and the friendly words people actually type for them.
SORT_KEYS: dict[str, str] = {
    "created_at": "created_at",
    "created": "created_at",
    "age": "created_at",
    "updated_at": "updated_at",
    "updated": "updated_at",
    "activity": "updated_at",
    "status": "status",
    "elapsed": "elapsed",
    "duration": "elapsed",
    "repo": "repo",
    "repository": "repo",
    "title": "title",
    "workflow": "workflow",
    "changes": "changes",
    "diff": "changes",
    "size": "size",
    "cost": "size",
}
DIRECTIONS: dict[str, str] = {
    "asc": "asc",
    "ascending": "asc",
    "desc": "desc",
    "descending": "desc",
}
SORT_LABELS: dict[str, str] = {
    "created_at": "creation time",
    "updated_at": "last activity",
    "status": "status",
    "elapsed": "elapsed time",
    "repo": "repository",
    "title": "title",
    "workflow": "workflow",
    "changes": "size of the diff",
    "size": "cost",
}

GRAMMAR = (
    "`/runs [mine] [status…] [sort:<key>] [asc|desc] [limit:<1-100>] [page:<n>] [parent:<run-id>] [all]`"
    " `[by:<login>|by:me] [repo:<owner/name>] [workflow:<name>]`, and `-by:` `-repo:` `-workflow:` to leave some out\n"
    "`/runs <run-id or prefix>` · `/runs help`\n"
    "`/runs subscribe [failed] [questions] [approvals] [cancelled] [succeeded] [pr] [cost]"
    " [repo:<owner/name>] [workflow:<name>] [label:<k=v>]"
    " [by:<login>|by:me] [-by:…] [-repo:…] [-workflow:…]`"
    " · `/runs subscriptions` · `/runs unsubscribe <id|all>`\n"
    "`/runs follow <run-id>` · `/runs unfollow <run-id>` · `/runs start [automation-id]`\n"
    "`/runs new <what to do>` · `/runs setup [repo:<owner/name>] [branch:<name>] [workflow:<name>] | off`\n"
    "`/runs stats [today|yesterday|week]` · `/runs summary [daily HH:MM | off]`\n"
    "`/runs changes <run-id>` · `/runs cost <run-id>` · `/runs logs <run-id>` · `/runs preview <run-id> <port>`\n"
    "`/runs mute <run-id> [1h|1d|end]` · `/runs unmute <run-id>` · `/runs muted`\n"
    "`/runs link <github-login>` · `/runs unlink [login]` · `/runs whoami`"
    " · `/runs notify [questions approvals failed succeeded cost | off]`\n"
    "*status*: " + " ".join(f"`{b}`" for b in BUCKETS) + ", or `active`, `done`\n"
    "*sort keys*: "
    + " ".join(f"`{k}`" for k in dict.fromkeys(SORT_KEYS.values()))
    + " (also `cost`, `age`, `duration`, `diff`)"
)
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("blocked", "runs waiting for an answer"),
    ("mine", "your runs: started from Slack by you, or by your linked GitHub login"),
    ("failed by:octocat -repo:acme/sandbox", "octocat's failed runs, leaving one repository out"),
    ("failed sort:elapsed asc", "failed runs, shortest first"),
    ("active sort:cost limit:20", "the 20 most expensive active runs"),
    ("done page:2", "finished runs, second page"),
    ("parent:01KJW4MG800000000000000004", "children of a run"),
    ("01KJW4MG", "one run in detail, by id or prefix"),
    ("subscribe failed repo:acme/api", "post this repo's failed runs in this channel"),
    ("subscribe succeeded pr by:me", "tell this channel when your runs succeed and open pull requests"),
    ("mute 01KJW4MG 1d", "no alerts, reminders or escalations about that run here for a day"),
    ("stats week", "what ran, failed and cost in the last 7 days, and who is waited on"),
    ("summary daily 09:00", "post yesterday's picture in this channel every morning"),
)

_ID_CHARS = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_CROCKFORD = re.compile(r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]+$")
_KEYWORDS = ("help", "all", "mine", *STATUS_ALIASES, *DIRECTIONS)
_PREFIXES = ("sort:", "limit:", "page:", "parent:", "status:")
_VOCABULARY = (
    *_KEYWORDS,
    *(f"sort:{k}" for k in SORT_KEYS),
    "limit:",
    "page:",
    "parent:",
    "by:me",
    "by:",
    "-by:",
    "repo:",
    "-repo:",
    "workflow:",
    "-workflow:",
    "stats",
    "start",
    "mute",
    "unmute",
    "muted",
    "setup",
    "new",
    "summary",
    "subscribe",
    *INSPECT_WORDS,
)


# GitHub's rule for a login: letters, digits and single inner hyphens, 39 characters at most.
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPO = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_WORKFLOW = re.compile(r"^[^\s`*<>&|]+$")


def valid_login(value: str) -> bool:
    return bool(_LOGIN.match(value)) and value.isascii()


def valid_repo(value: str, *, longest: int = 200) -> bool:
    return len(value) <= longest and bool(_REPO.match(value)) and value.isascii()


def valid_workflow(value: str, *, longest: int = 200) -> bool:
    return len(value) <= longest and bool(_WORKFLOW.match(value))


@dataclass(frozen=True)
class Narrow:
    """Who started a run and where it ran: what Fabro's listing cannot filter by, so the bot does.

    Logins are GitHub's, in lower case; `by_me` stands for the caller's linked logins and `mine` for
    the caller's runs by the owner rule (both known only once the caller is).
    """

    by: tuple[str, ...] = ()
    by_me: bool = False
    mine: bool = False
    not_by: tuple[str, ...] = ()
    repo: str | None = None
    not_repos: tuple[str, ...] = ()
    workflow: str | None = None
    not_workflows: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self != Narrow()

    @property
    def filters(self) -> bool:
        """True when a run read from Fabro must be looked at before it is shown (everything but `mine`)."""
        return replace(self, mine=False).active

    def words(self) -> list[str]:
        words = ["mine"] if self.mine else []
        words += [f"by:{login}" for login in self.by] + (["by:me"] if self.by_me else [])
        words += [f"-by:{login}" for login in self.not_by]
        words += [f"repo:{self.repo}"] if self.repo else []
        words += [f"-repo:{repo}" for repo in self.not_repos]
        words += [f"workflow:{self.workflow}"] if self.workflow else []
        words += [f"-workflow:{name}" for name in self.not_workflows]
        return words

    def describe(self) -> str:
        """ ", started by ada, in acme/api, not of workflow nightly" (empty when nothing narrows)."""
        parts = []
        who = [*self.by, *(["you"] if self.by_me else [])]
        if who:
            parts.append("started by " + " or ".join(who))
        if self.not_by:
            parts.append("not by " + " or ".join(self.not_by))
        if self.repo:
            parts.append(f"in {self.repo}")
        if self.not_repos:
            parts.append("not in " + " or ".join(self.not_repos))
        if self.workflow:
            parts.append(f"of workflow {self.workflow}")
        if self.not_workflows:
            parts.append("not of workflow " + " or ".join(self.not_workflows))
        return "".join(f", {p}" for p in parts)

    def accepts(self, run: Run, logins: frozenset[str] = frozenset()) -> bool:
        """Whether `run` passes every filter; `logins` are the caller's, for `by:me`. `mine` is not judged here."""
        creator = run.created_by
        login = (creator.login or "").lower() or None if creator is not None and creator.kind == "user" else None
        wanted = {*self.by, *(logins if self.by_me else ())}
        if (self.by or self.by_me) and login not in wanted:
            return False
        if login is not None and login in self.not_by:
            return False
        repo = (run.repository.name or "").lower()
        if self.repo and repo != self.repo.lower():
            return False
        if repo and repo in {r.lower() for r in self.not_repos}:
            return False
        names = {n.lower() for n in (run.workflow.name, run.workflow.graph_name, run.workflow.slug) if n}
        if self.workflow and self.workflow.lower() not in names:
            return False
        return not names & {w.lower() for w in self.not_workflows}


class _NarrowWords:
    """Reads `by:` `-by:` `repo:` `-repo:` `workflow:` `-workflow:` words, for listings and subscriptions alike."""

    NAMES = ("by", "-by", "repo", "-repo", "workflow", "-workflow")
    HINTS = (
        "`by:octocat` or `by:me` (started by), `repo:acme/api`, `workflow:implement`;"
        " a leading `-` excludes: `-by:dependabot` `-repo:acme/sandbox`",
    )

    def __init__(self, *, longest: int = 200, most: int | None = None) -> None:
        self.longest = longest
        self.most = most
        self.count = 0
        self.by: list[str] = []
        self.by_me = False
        self.not_by: list[str] = []
        self.repo: str | None = None
        self.not_repos: list[str] = []
        self.workflow: str | None = None
        self.not_workflows: list[str] = []

    @classmethod
    def is_one(cls, raw: str) -> bool:
        name, colon, _ = raw.partition(":")
        return bool(colon) and name.lower() in cls.NAMES

    def take(self, raw: str) -> UsageError | None:
        name, _, value = raw.partition(":")
        name = name.lower()
        bare = name.lstrip("-")
        self.count += 1
        if self.most is not None and self.count > self.most:
            return UsageError(f"At most {self.most} of `by:` `repo:` `workflow:` and their exclusions.", word=raw)
        if bare == "by":
            login = value.removeprefix("@").lower()
            if login == "me" and name == "by":
                self.by_me = True
                return None
            if login == "me":
                return UsageError(
                    "`-by:me` is not a filter; to leave your runs out, name your login: `-by:<login>`.",
                    word=raw,
                    hints=self.HINTS,
                )
            if not valid_login(login):
                example = "by:octocat` or `by:me" if name == "by" else "-by:dependabot"
                return UsageError(f"`{raw}` needs a GitHub login, like `{example}`.", word=raw, hints=self.HINTS)
            (self.by if name == "by" else self.not_by).append(login)
            return None
        if bare == "repo" and not valid_repo(value, longest=self.longest):
            return UsageError(f"`{raw}` needs a value, like `{name}:acme/api`.", word=raw, hints=self.HINTS)
        if bare == "workflow" and not valid_workflow(value, longest=self.longest):
            return UsageError(f"`{raw}` needs a value, like `{name}:implement`.", word=raw, hints=self.HINTS)
        if name.startswith("-"):
            (self.not_repos if bare == "repo" else self.not_workflows).append(value)
            return None
        if getattr(self, bare) not in (None, value):
            return UsageError(
                f"`{bare}` is given twice.",
                word=raw,
                hints=("keep one of them (or exclude with `-" + bare + ":`)",),
            )
        setattr(self, bare, value)
        return None

    def narrow(self, *, mine: bool = False) -> Narrow:
        return Narrow(
            by=tuple(dict.fromkeys(self.by)),
            by_me=self.by_me,
            mine=mine,
            not_by=tuple(dict.fromkeys(self.not_by)),
            repo=self.repo,
            not_repos=tuple(dict.fromkeys(self.not_repos)),
            workflow=self.workflow,
            not_workflows=tuple(dict.fromkeys(self.not_workflows)),
        )


@dataclass(frozen=True)
class RunQuery(RunFilter):
    """A listing of runs as a person asked for it: Fabro's filter, plus the words and paging around it."""

    limit: int = DEFAULT_LIMIT
    narrow: Narrow = field(default_factory=Narrow)  # filtered by the bot: Fabro cannot

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1

    def at(self, offset: int, limit: int | None = None) -> RunQuery:
        return replace(self, offset=max(0, offset), limit=limit or self.limit)

    def text(self) -> str:
        """The `/runs` words that ask this query again (paging shown only off page 1)."""
        words = [*self.narrow.words()[:1], *self.statuses] if self.narrow.mine else list(self.statuses)
        words += [w for w in self.narrow.words() if w != "mine"]
        if self.sort:
            words.append(f"sort:{self.sort}")
        if self.direction:
            words.append(self.direction)
        if self.limit != DEFAULT_LIMIT:
            words.append(f"limit:{self.limit}")
        if self.offset and self.offset % self.limit == 0:
            words.append(f"page:{self.page}")
        if self.parent_id:
            words.append(f"parent:{self.parent_id}")
        if self.include_archived and not self.statuses:
            words.append("all")
        return " ".join(words)

    def describe(self) -> str:
        """Plain words for a header: "failed runs, by elapsed time (ascending)"."""
        what = ", ".join(self.statuses) + " runs" if self.statuses else "all runs" if self.include_archived else "runs"
        if self.narrow.mine:
            what = "your " + what
        what += self.narrow.describe()
        if self.parent_id:
            what += f" under {self.parent_id}"
        if self.sort or self.direction:
            label = SORT_LABELS.get(self.sort or "created_at", self.sort or "")
            order = "ascending" if self.direction == "asc" else "descending"
            what += f", by {label} ({order})"
        return what


@dataclass(frozen=True)
class RunLookup:
    """One run by full id (fetched) or unique prefix (resolved)."""

    selector: str


@dataclass(frozen=True)
class Help:
    """The help card."""


@dataclass(frozen=True)
class UsageError:
    """What was wrong with the words, and what would work instead."""

    problem: str
    word: str | None = None
    suggestion: str | None = None
    hints: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Subscribe:
    """Subscribe the channel to alerts: `kinds` ⊆ failed, questions, approvals; filters narrow them."""

    kinds: frozenset[str]
    repo: str | None = None
    workflow: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    by: tuple[str, ...] = ()
    by_me: bool = False  # the caller's linked logins, resolved when the subscription is made
    not_by: tuple[str, ...] = ()
    not_repos: tuple[str, ...] = ()
    not_workflows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscriptions:
    """List the channel's subscriptions."""


@dataclass(frozen=True)
class Unsubscribe:
    """Remove some of the channel's subscriptions by id, or all of them (`ids` None)."""

    ids: tuple[int, ...] | None


@dataclass(frozen=True)
class FollowRun:
    """Follow a run in this channel (`follow`), or stop (`unfollow`)."""

    selector: str
    stop: bool = False


@dataclass(frozen=True)
class Start:
    """Start a run from an automation: pick it in a window (no id), or confirm the one named."""

    automation_id: str | None = None


@dataclass(frozen=True)
class Setup:
    """What the channel works on when work starts from it: show it (nothing set), set it, or clear it."""

    repository: str | None = None
    branch: str | None = None
    workflow: str | None = None
    off: bool = False


@dataclass(frozen=True)
class NewWork:
    """Start work on the channel's repository: `goal` is the rest of the text, as Slack sent it."""

    goal: str


@dataclass(frozen=True)
class Stats:
    """The daily picture for a window of days in the caller's time zone."""

    window: str = "today"  # today | yesterday | week


@dataclass(frozen=True)
class Summary:
    """The channel's scheduled summary: show it (`at` and `off` unset), set it daily at `at`, or stop it."""

    at: str | None = None  # HH:MM, 24-hour
    off: bool = False


@dataclass(frozen=True)
class Link:
    """Link the caller's Slack account to a Fabro login (`unlink`: remove it, or all of theirs when None;
    `link` with no login: prove one by signing in to GitHub)."""

    login: str | None
    unlink: bool = False


NOTIFY_WORDS = ("questions", "approvals", "failed", "succeeded", "cost")


@dataclass(frozen=True)
class Notify:
    """The caller's direct messages: show them (`kinds` None), or keep exactly `kinds` (empty: off)."""

    kinds: frozenset[str] | None = None


MAX_MUTE_MINUTES = 30 * 24 * 60


@dataclass(frozen=True)
class MuteRun:
    """Mute a run in this conversation for `minutes`, or until it ends (None)."""

    selector: str
    minutes: int | None = None


@dataclass(frozen=True)
class Unmute:
    selector: str


@dataclass(frozen=True)
class Muted:
    """What is muted in this conversation."""


@dataclass(frozen=True)
class WhoAmI:
    """The caller's linked logins."""


@dataclass(frozen=True)
class Inspect:
    """A look into one run: its changes, cost or log, or a preview link to a port of its sandbox."""

    what: str  # one of INSPECT_WORDS
    selector: str
    port: int | None = None  # preview only


Parsed = (
    RunQuery
    | RunLookup
    | Help
    | UsageError
    | Subscribe
    | Subscriptions
    | Unsubscribe
    | Stats
    | Summary
    | Start
    | Setup
    | NewWork
    | FollowRun
    | Link
    | Notify
    | WhoAmI
    | Inspect
    | MuteRun
    | Unmute
    | Muted
)

SUBSCRIPTION_WORDS = ("failed", "questions", "approvals", "cancelled", "succeeded", "pr", "cost")
# `cancelled`, `succeeded` and `pr` (a pull request opened for a run) are only asked for by name.
DEFAULT_SUBSCRIPTION = ("failed", "questions", "approvals")
_SUBSCRIBE_HINT = "`/runs subscribe failed repo:acme/api` or `/runs subscribe` for everything"


def parse(text: str | None) -> Parsed:
    """Read `/runs` words. Never raises: anything unusable becomes a `UsageError`."""
    words = (text or "").split()
    if not words or (len(words) == 1 and words[0].lower() in ("help", "?", "-h", "--help")):
        return Help()
    first = words[0].lower()
    if first in ("new", "setup"):
        return _work(first, text or "", words)
    if first == "subscribe":
        return _subscribe(words[1:])
    if first == "subscriptions":
        if len(words) > 1:
            return UsageError("`subscriptions` stands alone.", word=words[1], hints=("`/runs subscriptions`",))
        return Subscriptions()
    if first == "unsubscribe":
        return _unsubscribe(words[1:])
    if first == "stats":
        return _stats(words[1:])
    if first in ("follow", "unfollow"):
        if len(words) != 2 or not _looks_like_run_id(words[1]):
            hint = f"`/runs {first} 01KJW4MG`"
            return UsageError(f"`{first}` takes the id of a run, or a unique prefix.", word=words[-1], hints=(hint,))
        selector = words[1].upper() if _CROCKFORD.match(words[1]) else words[1]
        return FollowRun(selector, stop=first == "unfollow")
    if first == "start":
        if len(words) > 2 or (len(words) == 2 and not _AUTOMATION.match(words[1])):
            hints = ("`/runs start` to pick one", "`/runs start <automation-id>`")
            return UsageError("`start` takes one automation id at most.", word=words[-1], hints=hints)
        return Start(words[1] if len(words) == 2 else None)
    reader = _FIRST_WORDS.get(first)
    if reader is not None:
        return reader(first, words[1:])
    return _Parser().run(words)


def _first_words() -> dict[str, Callable[[str, list[str]], Parsed]]:
    """Words that, first, decide the whole command: each with its reader of what follows."""
    table: dict[str, Callable[[str, list[str]], Parsed]] = {
        "summary": lambda _, rest: _summary(rest),
        "notify": lambda _, rest: _notify(rest),
    }
    table.update(dict.fromkeys(("link", "unlink", "whoami"), _link))
    table.update(dict.fromkeys(INSPECT_WORDS, _inspect))
    table.update(dict.fromkeys(("mute", "unmute", "muted"), _mute))
    return table


def _inspect(what: str, words: list[str]) -> Inspect | UsageError:
    example = "`/runs preview 01KJW4MG 3000`" if what == "preview" else f"`/runs {what} 01KJW4MG`"
    wanted = 2 if what == "preview" else 1
    if len(words) != wanted or not _looks_like_run_id(words[0]):
        said = "the id of a run (or a unique prefix) and a port" if what == "preview" else "the id of a run"
        return UsageError(f"`{what}` takes {said}.", word=(words or [what])[-1], hints=(example,))
    selector = words[0].upper() if _CROCKFORD.match(words[0]) else words[0]
    if what != "preview":
        return Inspect(what, selector)
    port = _integer(words[1])
    if port is None or not 1 <= port <= MAX_PREVIEW_PORT:
        return UsageError("The port is a number from 1 to 65535.", word=words[1], hints=(example,))
    return Inspect(what, selector, port)


_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![/.])$")
_WORKFLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # a folder in WORKFLOWS_DIR
_SETUP_HINTS = ("`/runs setup repo:acme/api branch:main workflow:implement`", "`/runs setup off`")


def _work(first: str, text: str, words: list[str]) -> Setup | NewWork | UsageError:
    if first == "setup":
        return _setup(words[1:])
    goal = text.strip()[len(words[0]) :].strip()
    if not goal:
        example = "`/runs new the login test is flaky since #412, make it deterministic`"
        return UsageError("`new` takes what you want done.", word="new", hints=(example,))
    return NewWork(goal)


_WHAT = {"repo": "a GitHub repository (owner/name)", "branch": "a branch name", "workflow": "a workflow name"}


def _setup(words: list[str]) -> Setup | UsageError:
    if not words:
        return Setup()
    if [w.lower() for w in words] == ["off"]:
        return Setup(off=True)
    found: dict[str, str] = {}
    for raw in words:
        name, colon, value = raw.partition(":")
        name = name.lower()
        pattern = {"repo": _REPOSITORY, "branch": _BRANCH, "workflow": _WORKFLOW_NAME}.get(name)
        if not colon or pattern is None:
            close = difflib.get_close_matches(name, ["repo", "branch", "workflow"], n=1, cutoff=0.6)
            suggestion = f"{close[0]}:{value}" if close and colon else None
            problem = f"`setup` takes repo:, branch: and workflow:, not `{raw}`."
            return UsageError(problem, word=raw, suggestion=suggestion, hints=_SETUP_HINTS)
        if not pattern.match(value):
            what = {
                "repo": "a GitHub repository (owner/name)",
                "branch": "a branch name",
                "workflow": "a workflow name",
            }
            return UsageError(f"`{value}` is not {what[name]}.", word=raw, hints=_SETUP_HINTS)
        found[name] = value
    if "repo" not in found:
        return UsageError("`setup` needs the repository: `repo:owner/name`.", hints=_SETUP_HINTS)
    return Setup(found["repo"], found.get("branch"), found.get("workflow"))


def _notify(words: list[str]) -> Notify | UsageError:
    hints = ("`/runs notify questions approvals failed`", "`/runs notify off`", "`/runs notify` shows yours")
    lowered = [w.lower() for w in words]
    if not words:
        return Notify()
    if lowered == ["off"]:
        return Notify(frozenset())
    aliases = {
        "question": "questions",
        "approval": "approvals",
        "failures": "failed",
        "failure": "failed",
        "success": "succeeded",
        "successes": "succeeded",
    }
    kinds: set[str] = set()
    for raw, word in zip(words, lowered, strict=True):
        word = aliases.get(word, word)
        if word not in NOTIFY_WORDS:
            close = difflib.get_close_matches(word, NOTIFY_WORDS, n=1, cutoff=0.6)
            return UsageError(
                f"I can't notify you of `{raw}`.", word=raw, suggestion=close[0] if close else None, hints=hints
            )
        kinds.add(word)
    return Notify(frozenset(kinds))


_MUTE_UNITS = {"m": 1, "h": 60, "d": 24 * 60}
_UNTIL_END = ("end", "until-end", "forever", "run")


def mute_minutes(word: str) -> int | UsageError | None:
    """`30m` `1h` `2d` → minutes; `end` → None (until the run ends); anything else → a usage error."""
    lowered = word.lower()
    if lowered in _UNTIL_END:
        return None
    number, unit = lowered[:-1], lowered[-1:]
    if unit in _MUTE_UNITS and number.isascii() and number.isdigit() and len(number) <= 5:
        minutes = int(number) * _MUTE_UNITS[unit]
        if 0 < minutes <= MAX_MUTE_MINUTES:
            return minutes
    return UsageError(
        f"`{word}` is not how long to mute: say `1h`, `1d`, `30m` (up to 30 days), or `end` for the rest of the run.",
        word=word,
        suggestion=None,
        hints=("`/runs mute 01KJW4MG 1h`", "`/runs mute 01KJW4MG` mutes it until it ends"),
    )


def _mute(first: str, words: list[str]) -> MuteRun | Unmute | Muted | UsageError:
    if first == "muted":
        if words:
            return UsageError("`muted` stands alone.", word=words[0], hints=("`/runs muted`",))
        return Muted()
    hint = "`/runs mute 01KJW4MG 1h`" if first == "mute" else "`/runs unmute 01KJW4MG`"
    most = 2 if first == "mute" else 1
    if not words or len(words) > most or not _looks_like_run_id(words[0]):
        return UsageError(
            f"`{first}` takes the id of a run, or a unique prefix"
            + (", and how long (`1h`, `1d`, `end`)." if first == "mute" else "."),
            word=words[-1] if words else None,
            hints=(hint, "`/runs muted` lists what is muted here"),
        )
    selector = words[0].upper() if _CROCKFORD.match(words[0]) else words[0]
    if first == "unmute":
        return Unmute(selector)
    minutes = mute_minutes(words[1]) if len(words) == 2 else None
    if isinstance(minutes, UsageError):
        return minutes
    return MuteRun(selector, minutes)


def _link(first: str, words: list[str]) -> Link | WhoAmI | UsageError:
    if first == "whoami":
        if words:
            return UsageError("`whoami` stands alone.", word=words[0], hints=("`/runs whoami`",))
        return WhoAmI()
    hints = (
        "`/runs link` proves your GitHub login by signing in to GitHub",
        "`/runs link octocat` links you to `octocat` where the bot takes logins as typed",
        "`/runs unlink` removes your links",
    )
    if len(words) > 1:
        return UsageError(f"`{first}` takes one GitHub login.", word=words[-1], hints=hints)
    if not words:
        return Link(None, unlink=first == "unlink")  # a bare `link`: sign in with GitHub
    login = words[0].removeprefix("@")
    if not _LOGIN.match(login):
        return UsageError(f"`{words[0]}` is not a GitHub login.", word=words[0], hints=hints)
    return Link(login.lower(), unlink=first == "unlink")


def _subscribe(words: list[str]) -> Subscribe | UsageError:
    kinds: set[str] = set()
    labels: dict[str, str] = {}
    narrowing = _NarrowWords()
    for raw in words:
        word = raw.lower()
        name, colon, value = raw.partition(":")
        if word in SUBSCRIPTION_WORDS:
            kinds.add(word)
        elif word in _SUBSCRIPTION_ALIASES:
            kinds.add(_SUBSCRIPTION_ALIASES[word])
        elif _NarrowWords.is_one(raw):
            error = narrowing.take(raw)
            if error is not None:
                if error.problem.endswith("given twice."):
                    return replace(error, hints=("subscribe twice to follow two of them",))
                return replace(error, hints=(*error.hints, _SUBSCRIBE_HINT))
        elif colon and name.lower() == "label":
            key, equals, label_value = value.partition("=")
            if not equals or not key or len(value) > 200:
                return UsageError(f"`{raw}` needs a key and a value, like `label:team=platform`.", word=raw)
            labels[key] = label_value
        else:
            close = difflib.get_close_matches(
                word, (*SUBSCRIPTION_WORDS, *(f"{n}:" for n in _NarrowWords.NAMES), "label:"), n=1, cutoff=0.6
            )
            if close is None or not close:
                close = _close_prefix(raw)
            return UsageError(
                f"I can't subscribe to `{raw}`.",
                word=raw,
                suggestion=close[0] if close else None,
                hints=(
                    "kinds: " + " ".join(f"`{k}`" for k in SUBSCRIPTION_WORDS) + ";"
                    " filters: `repo:<owner/name>` `workflow:<name>` `label:<k=v>` `by:<login>` `by:me`,"
                    " and `-by:` `-repo:` `-workflow:` to leave some out",
                    _SUBSCRIBE_HINT,
                ),
            )
    narrow = narrowing.narrow()
    return Subscribe(
        kinds=frozenset(kinds or DEFAULT_SUBSCRIPTION),
        repo=narrow.repo,
        workflow=narrow.workflow,
        labels=tuple(sorted(labels.items())),
        by=narrow.by,
        by_me=narrow.by_me,
        not_by=narrow.not_by,
        not_repos=narrow.not_repos,
        not_workflows=narrow.not_workflows,
    )


_SUBSCRIPTION_ALIASES = {
    "success": "succeeded",
    "successes": "succeeded",
    "prs": "pr",
    "pull_request": "pr",
    "pull_requests": "pr",
    "question": "questions",
    "approval": "approvals",
    "failures": "failed",
    "cancellations": "cancelled",
    "canceled": "cancelled",
}


def _close_prefix(raw: str) -> list[str]:
    """`repos:acme/api` → [`repo:acme/api`]: a misspelt filter name keeps its value."""
    name, colon, value = raw.partition(":")
    if not colon:
        return []
    names = [*(f"{n}:" for n in _NarrowWords.NAMES), *_PREFIXES]
    close = difflib.get_close_matches(name.lower() + ":", names, n=1, cutoff=0.6)
    return [close[0] + value] if close else []


STATS_WINDOWS = ("today", "yesterday", "week")
_AUTOMATION = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")
_HH_MM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def _stats(words: list[str]) -> Stats | UsageError:
    hint = "`/runs stats`, `/runs stats yesterday` or `/runs stats week`"
    if len(words) > 1:
        return UsageError("`stats` takes one window at most.", word=words[1], hints=(hint,))
    if not words:
        return Stats()
    window = words[0].lower()
    if window not in STATS_WINDOWS:
        close = difflib.get_close_matches(window, STATS_WINDOWS, n=1, cutoff=0.5)
        return UsageError(
            f"`{words[0]}` is not a window.", word=words[0], suggestion=close[0] if close else None, hints=(hint,)
        )
    return Stats(window)


def _summary(words: list[str]) -> Summary | UsageError:
    hints = ("`/runs summary daily 09:00`", "`/runs summary off`", "`/runs summary` shows the setting")
    lowered = [w.lower() for w in words]
    if not words:
        return Summary()
    if lowered == ["off"]:
        return Summary(off=True)
    if len(words) == 2 and lowered[0] == "daily":
        match = _HH_MM.match(words[1]) if words[1].isascii() else None
        if match is None:
            return UsageError(f"`{words[1]}` is not a time of day like `09:00` (24-hour).", word=words[1], hints=hints)
        return Summary(at=f"{int(match.group(1)):02d}:{match.group(2)}")
    return UsageError("A summary is set daily at a time, or turned off.", word=words[0], hints=hints)


def _unsubscribe(words: list[str]) -> Unsubscribe | UsageError:
    hints = ("`/runs subscriptions` lists them with their ids", "`/runs unsubscribe 3` or `/runs unsubscribe all`")
    if not words:
        return UsageError("Say which subscription to remove.", hints=hints)
    if len(words) == 1 and words[0].lower() == "all":
        return Unsubscribe(None)
    ids: list[int] = []
    for raw in words:
        number = _integer(raw.lstrip("#"))
        if number is None or number == 0:
            return UsageError(f"`{raw}` is not a subscription id.", word=raw, hints=hints)
        ids.append(number)
    return Unsubscribe(tuple(dict.fromkeys(ids)))


class _Parser:
    def __init__(self) -> None:
        self.statuses: list[str] = []
        self.sort: str | None = None
        self.direction: str | None = None
        self.limit: int | None = None
        self.page: int | None = None
        self.parent_id: str | None = None
        self.all = False
        self.selector: str | None = None
        self.other_words: list[str] = []
        self.mine = False
        self.narrowing = _NarrowWords(longest=MAX_NARROW_VALUE, most=MAX_NARROW)

    def run(self, words: list[str]) -> Parsed:
        for raw in words:
            error = self.word(raw)
            if error:
                return error
        return self.finish()

    def word(self, raw: str) -> UsageError | None:
        word = raw.lower()
        if _NarrowWords.is_one(raw):
            self.other_words.append(raw)
            return self.narrowing.take(raw)
        if word == "mine":
            self.other_words.append(raw)
            self.mine = True
            return None
        if word.startswith(_PREFIXES):
            name, _, value = word.partition(":")
            self.other_words.append(raw)
            handler: Callable[[str, str, str], UsageError | None] = getattr(self, f"_{name}")
            return handler(raw, value, raw.partition(":")[2])
        if word in STATUS_ALIASES:
            self.other_words.append(raw)
            self._add_statuses(STATUS_ALIASES[word])
            return None
        if word in DIRECTIONS:
            self.other_words.append(raw)
            return self._set("direction", DIRECTIONS[word], raw)
        if word == "all":
            self.other_words.append(raw)
            self.all = True
            return None
        if word == "help":
            return UsageError("`help` stands alone: try `/runs help`.", word=raw)
        if _looks_like_run_id(raw) and not _close_keyword(word, cutoff=0.8):
            if self.selector is not None:
                return UsageError(
                    "Only one run can be shown in detail at a time.",
                    word=raw,
                    hints=(f"`/runs {self.selector}`",),
                )
            self.selector = raw.upper() if _CROCKFORD.match(raw) else raw
            return None
        return _unknown(raw)

    def finish(self) -> Parsed:
        if self.selector is not None:
            if self.other_words:
                return UsageError(
                    "A run id stands alone; filters and sorting are for listings.",
                    word=self.other_words[0],
                    hints=(f"`/runs {self.selector}`",),
                )
            return RunLookup(self.selector)
        if self.mine and self.parent_id:
            return UsageError(
                "`mine` lists your runs; `parent:` the children of one run: ask for one of them.",
                word="mine",
                hints=("`/runs mine`", "`/runs parent:01KJW4MG800000000000000004 by:me`"),
            )
        if self.mine and self.sort not in (None, "created_at", "updated_at"):
            return UsageError(
                "`mine` is sorted by creation or by last activity.",
                word=f"sort:{self.sort}",
                suggestion="sort:updated",
                hints=("`/runs mine sort:created`", "`/runs mine sort:updated asc`"),
            )
        if self.all and self.statuses:
            return UsageError(
                "`all` only applies when no status is named (Fabro ignores it once you filter by status).",
                word="all",
                hints=("add `archived` to include archived runs: `/runs failed archived`",),
            )
        limit = self.limit or DEFAULT_LIMIT
        return RunQuery(
            statuses=tuple(self.statuses),
            sort=self.sort,
            direction=self.direction,
            limit=limit,
            offset=((self.page or 1) - 1) * limit,
            parent_id=self.parent_id,
            include_archived=self.all,
            narrow=self.narrowing.narrow(mine=self.mine),
        )

    def _add_statuses(self, buckets: tuple[str, ...]) -> None:
        for bucket in buckets:
            if bucket not in self.statuses:
                self.statuses.append(bucket)

    def _set(self, attr: str, value: object, raw: str) -> UsageError | None:
        current = getattr(self, attr)
        if current is not None and current != value:
            return UsageError(f"`{attr}` is given twice.", word=raw, hints=("keep one of them",))
        setattr(self, attr, value)
        return None

    def _status(self, raw: str, value: str, _original: str) -> UsageError | None:
        if value in STATUS_ALIASES:
            self._add_statuses(STATUS_ALIASES[value])
            return None
        return _bad_value(raw, "status", value, tuple(STATUS_ALIASES), tuple(STATUS_ALIASES))

    def _sort(self, raw: str, value: str, _original: str) -> UsageError | None:
        if value in SORT_KEYS:
            return self._set("sort", SORT_KEYS[value], raw)
        return _bad_value(raw, "sort", value, tuple(SORT_KEYS), tuple(SORT_LABELS))

    def _limit(self, raw: str, value: str, _original: str) -> UsageError | None:
        number = _integer(value)
        if number is None or not 1 <= number <= MAX_LIMIT:
            return UsageError(
                f"`limit` takes a whole number from 1 to {MAX_LIMIT}.",
                word=raw,
                hints=("`limit:20`",),
            )
        return self._set("limit", number, raw)

    def _page(self, raw: str, value: str, _original: str) -> UsageError | None:
        number = _integer(value)
        if number is None or not 1 <= number <= MAX_PAGE:
            return UsageError("`page` takes a page number, starting at 1.", word=raw, hints=("`page:2`",))
        return self._set("page", number, raw)

    def _parent(self, raw: str, _value: str, original: str) -> UsageError | None:
        if not _ID_CHARS.match(original):
            return UsageError(
                "`parent` takes the id of a run.",
                word=raw,
                hints=("`parent:01KJW4MG800000000000000004`",),
            )
        parent = original.upper() if _CROCKFORD.match(original) else original
        return self._set("parent_id", parent, raw)


def _integer(value: str) -> int | None:
    # Only ASCII digits: str.isdigit() also accepts '²' and other digits int() cannot read.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 6 else None


def _looks_like_run_id(word: str) -> bool:
    # Fabro run ids are ULIDs: they start with the timestamp, so every prefix has a digit.
    return bool(_ID_CHARS.match(word)) and any(c.isdigit() for c in word) and len(word) >= 4


def _close_keyword(word: str, cutoff: float = 0.6) -> str | None:
    matches = difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=cutoff)
    return matches[0] if matches else None


def _unknown(raw: str) -> UsageError:
    close = _close_prefix(raw)
    suggestion = close[0] if close else _close_keyword(raw.lower())
    return UsageError(f"I don't know the word `{raw}`.", word=raw, suggestion=suggestion)


def _bad_value(raw: str, name: str, value: str, choices: tuple[str, ...], shown: tuple[str, ...]) -> UsageError:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    return UsageError(
        f"`{name}:{value}` is not something I can {name} by." if name == "sort" else f"`{value}` is not a {name}.",
        word=raw,
        suggestion=f"{name}:{close[0]}" if close else None,
        hints=("choose from " + " ".join(f"`{c}`" for c in shown),),
    )


_FIRST_WORDS = _first_words()
