"""Who may do what from Slack: one rule per action class, and the lists of people they name.

Every verb belongs to a class with its own setting (`ALLOW_ANSWER`, `ALLOW_APPROVE`,
`ALLOW_OPERATE`, `ALLOW_START`, `ALLOW_SHIP`, `ALLOW_ROUTE`), a comma list of user ids (U…/W…),
user groups (S…), `owner` (the run's owner), `admins` (workspace admins and owners, from
`users.info`) or `*`. The defaults are least privilege: anyone may answer a question, only the
run's owner and admins may change a run, only admins may start runs or route alerts.
`ACTION_ALLOWLIST` and `SUBSCRIPTION_ALLOWLIST` still work for one release, mapped onto the classes.

Group membership (`usergroups.users.list`) and admin status are cached for a few minutes, so a
click costs no Slack call most of the time. When Slack cannot say, the answer is no: acting is
refused rather than allowed by accident.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import NotAllowed
from bot.core.keys import Verb
from bot.fabro.models import Run
from bot.slack.webapi import slack_error

__all__ = [
    "CLASS_OF",
    "DEFAULT_RULES",
    "ActionClass",
    "Allowlist",
    "Permissions",
    "Rule",
    "describe_entries",
    "effective_rules",
    "owner_lookup",
    "parse_allowlist",
    "parse_rule",
]

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0
_ENTRY = re.compile(r"^(?:[UWS][A-Z0-9]{2,}|owner|admins|\*)$")


class ActionClass(enum.StrEnum):
    """What a permission setting governs; `setting` names its variable."""

    ANSWER = "answer"
    APPROVE = "approve"
    OPERATE = "operate"
    START = "start"
    SHIP = "ship"
    ROUTE = "route"

    @property
    def setting(self) -> str:
        return f"ALLOW_{self.name}"

    @property
    def covers(self) -> str:
        return _COVERS[self]


_COVERS = {
    ActionClass.ANSWER: "answer a run's questions or ask Fabro about a run",
    ActionClass.APPROVE: "approve or deny a run",
    ActionClass.OPERATE: (
        "retry, cancel, resume, steer, interrupt or pause a run, open a preview of its sandbox,"
        " or unfollow someone else's follow"
    ),
    ActionClass.START: "start runs",
    ActionClass.SHIP: "create, merge or close a run's pull request",
    ActionClass.ROUTE: (
        "change where alerts and summaries are posted (subscribe, unsubscribe, summary), or mute a run in a channel"
    ),
}

DEFAULT_RULES: dict[ActionClass, str] = {
    ActionClass.ANSWER: "*",
    ActionClass.APPROVE: "owner,admins",
    ActionClass.OPERATE: "owner,admins",
    ActionClass.START: "admins",
    ActionClass.SHIP: "owner,admins",
    ActionClass.ROUTE: "admins",
}

CLASS_OF: dict[Verb, ActionClass] = {
    Verb.ANSWER: ActionClass.ANSWER,
    Verb.APPROVE: ActionClass.APPROVE,
    Verb.DENY: ActionClass.APPROVE,
    Verb.RETRY: ActionClass.OPERATE,
    Verb.CANCEL: ActionClass.OPERATE,
    Verb.STEER: ActionClass.OPERATE,
    Verb.INTERRUPT: ActionClass.OPERATE,
    Verb.PAUSE: ActionClass.OPERATE,
    Verb.RESUME: ActionClass.OPERATE,  # unpause
    Verb.RESUME_RUN: ActionClass.OPERATE,  # a failed run again from its last checkpoint, like Retry
    Verb.START: ActionClass.START,
    Verb.CREATE_PR: ActionClass.SHIP,
    Verb.MERGE_PR: ActionClass.SHIP,
    Verb.CLOSE_PR: ActionClass.SHIP,
    Verb.ASK: ActionClass.ANSWER,  # a question to Fabro about a run: a conversation, like an answer
}


def parse_rule(value: str | None) -> frozenset[str]:
    """`owner, admins, S123` → the entries; raises ValueError naming the ones that are not
    user ids, group ids, `owner`, `admins` or `*`."""
    entries = [part.strip() for part in (value or "").split(",") if part.strip()]
    wrong = [e for e in entries if not _ENTRY.match(e)]
    if wrong:
        raise ValueError(
            "must be Slack user ids (U…), user group ids (S…), owner, admins or *, comma-separated; "
            f"not {', '.join(wrong[:3])} (names and @handles do not work)"
        )
    return frozenset(entries)


@dataclass(frozen=True)
class Rule:
    """Who may act in one class, and where that came from (the setting, a deprecated one, or the default)."""

    entries: frozenset[str]
    source: str


def effective_rules(
    allow: Mapping[ActionClass, str | None],
    *,
    action_allowlist: str | None = None,
    subscription_allowlist: str | None = None,
) -> dict[ActionClass, Rule]:
    """Each class's rule: its own `ALLOW_…` setting, else the deprecated allowlist that covered it
    (`ACTION_ALLOWLIST` every class; `SUBSCRIPTION_ALLOWLIST` routing before it), else the default."""
    rules: dict[ActionClass, Rule] = {}
    for cls in ActionClass:
        own = allow.get(cls)
        legacy = (subscription_allowlist or action_allowlist) if cls is ActionClass.ROUTE else action_allowlist
        legacy_name = (
            "SUBSCRIPTION_ALLOWLIST" if cls is ActionClass.ROUTE and subscription_allowlist else "ACTION_ALLOWLIST"
        )
        if own:
            rules[cls] = Rule(parse_rule(own), cls.setting)
        elif legacy:
            rules[cls] = Rule(parse_rule(legacy), f"{legacy_name} (deprecated)")
        else:
            rules[cls] = Rule(parse_rule(DEFAULT_RULES[cls]), "default")
    return rules


def describe_entries(entries: frozenset[str]) -> str:
    """`owner,admins,U1,S2` → "the run's owner, workspace admins, <@U1> and the members of <!subteam^S2>"."""
    if "*" in entries:
        return "everyone"
    said: list[str] = []
    if "owner" in entries:
        said.append("the run's owner")
    if "admins" in entries:
        said.append("workspace admins")
    said += [f"<@{e}>" for e in sorted(entries) if e[:1] in ("U", "W")]
    said += [f"the members of <!subteam^{e}>" for e in sorted(entries) if e[:1] == "S"]
    if not said:
        return "nobody"
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


Owner = Callable[[], Awaitable[str | None]]


def owner_lookup(
    get_run: Callable[[str], Awaitable[Run]], owner_of: Callable[[Run], Awaitable[str | None]] | None, run_id: str
) -> Owner | None:
    """A lookup of `run_id`'s owner, made only when a rule names `owner` (a child run belongs to its
    parent's owner); None when owners are not known."""
    if owner_of is None:
        return None

    async def lookup() -> str | None:
        run = await get_run(run_id)
        found = await owner_of(run)
        if found is None and run.parent_id:
            found = await owner_of(await get_run(run.parent_id))
        return found

    return lookup


def parse_allowlist(value: str | None) -> frozenset[str]:
    """`U123, S456` → {"U123", "S456"}; blanks ignored."""
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


@dataclass
class Allowlist:
    entries: frozenset[str]
    slack: AsyncWebClient | None = None
    clock: Callable[[], float] = time.monotonic  # seconds, for how long group members are cached
    _groups: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @property
    def open(self) -> bool:
        """No allowlist: everyone who can see a card may act on it."""
        return not self.entries

    def describe(self) -> str:
        if self.open:
            return "everyone in a channel with a card may act on it (ACTION_ALLOWLIST is not set)"
        users = sorted(e for e in self.entries if not e.startswith("S"))
        groups = sorted(e for e in self.entries if e.startswith("S"))
        return f"only {len(users)} user(s) and the members of {len(groups)} user group(s) in ACTION_ALLOWLIST may act"

    async def allows(self, user_id: str) -> bool:
        if self.open or user_id in self.entries:
            return True
        for group in sorted(e for e in self.entries if e.startswith("S")):
            if user_id in await self._members(group):
                return True
        return False

    async def people(self) -> list[str]:
        """Everyone named: the users, then the members of the groups (each once)."""
        found = [e for e in sorted(self.entries) if not e.startswith("S")]
        for group in sorted(e for e in self.entries if e.startswith("S")):
            found += sorted(await self._members(group))
        return list(dict.fromkeys(found))

    async def _members(self, group: str) -> frozenset[str]:
        async with self._lock:
            cached = self._groups.get(group)
            if cached and self.clock() - cached[0] < GROUP_CACHE_SECONDS:
                return cached[1]
            members: frozenset[str] = frozenset()
            if self.slack is not None:
                try:
                    response = await self.slack.usergroups_users_list(usergroup=group)
                    members = frozenset(response.get("users") or [])
                except SlackApiError as exc:
                    log.warning("could not list members of user group %s: %s", group, slack_error(exc))
                    return cached[1] if cached else frozenset()
            self._groups[group] = (self.clock(), members)
            return members


@dataclass
class Permissions:
    """The rule of every class, and the answer to "may this person do this, here?"."""

    rules: Mapping[ActionClass, Rule]
    slack: AsyncWebClient | None = None
    clock: Callable[[], float] = time.monotonic
    _members: dict[ActionClass, Allowlist] = field(default_factory=dict, init=False)
    _admins: dict[str, tuple[float, bool]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        groups: dict[str, Allowlist] = {}  # one cache per setting's groups, shared by classes naming the same
        for cls, rule in self.rules.items():
            named = frozenset(e for e in rule.entries if e[:1] in ("U", "W", "S"))
            key = ",".join(sorted(named))
            self._members[cls] = groups.setdefault(key, Allowlist(named, self.slack, self.clock))

    @classmethod
    def everyone(cls) -> Permissions:
        return cls({c: Rule(frozenset({"*"}), "default") for c in ActionClass})

    def rule(self, cls: ActionClass) -> Rule:
        return self.rules[cls]

    def who(self, cls: ActionClass) -> str:
        return describe_entries(self.rules[cls].entries)

    def refusal(self, cls: ActionClass, what: str | Verb | None = None) -> NotAllowed:
        source = self.rules[cls].source
        setting = source.split()[0] if source.endswith("(deprecated)") else cls.setting
        return NotAllowed(what or cls.covers, setting, who=self.who(cls))

    async def allows(self, cls: ActionClass, user_id: str, owner: Owner | None = None) -> bool:
        entries = self.rules[cls].entries
        if "*" in entries or user_id in entries:
            return True
        listed = self._members[cls]
        if not listed.open and await listed.allows(user_id):
            return True
        if "admins" in entries and await self.is_admin(user_id):
            return True
        return "owner" in entries and owner is not None and (await owner()) == user_id

    async def check(
        self, cls: ActionClass, user_id: str, owner: Owner | None = None, what: str | Verb | None = None
    ) -> None:
        """Raises `NotAllowed` (naming the class and who may) unless `user_id` may act in `cls`."""
        if not await self.allows(cls, user_id, owner):
            log.info("user=%s is not allowed to %s (%s)", user_id, what or cls, cls.setting)
            raise self.refusal(cls, what)

    async def is_admin(self, user_id: str) -> bool:
        cached = self._admins.get(user_id)
        if cached and self.clock() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        if self.slack is None:
            return False
        try:
            response = await self.slack.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("could not tell whether user=%s is an admin: %s", user_id, slack_error(exc))
            return False
        person = response.get("user") or {}
        admin = bool(person.get("is_admin") or person.get("is_owner") or person.get("is_primary_owner"))
        self._admins[user_id] = (self.clock(), admin)
        return admin

    def table(self) -> list[tuple[str, str, str]]:
        """(setting, who may, where the rule comes from), one per class, for `check`."""
        return [
            (
                cls.setting,
                self.who(cls).replace("<@", "").replace("<!subteam^", "").replace(">", ""),
                self.rules[cls].source,
            )
            for cls in ActionClass
        ]
