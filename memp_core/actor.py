"""Who acts: the one :class:`Actor` every write in the core takes, and the role rules.

The promise of the product is that agents are served only what a person approved and that
the audit log says truthfully who did what. Both rest on this module: each write names its
actor (nobody gets admin by default), checks the actor's role here, and records
``actor.author`` in the audit log, never a name read from a file, a form or an agent.

Roles, weakest first: ``viewer`` reads; ``reviewer`` also approves, rejects, edits, rolls
back, pins, deprecates, imports, exports and starts experiments; ``admin`` also restores
backups as they are and manages agents' keys. Review actions are for people only: an agent
(or the program itself) never approves, whatever role it was given.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

from memp_core.errors import PermissionDeniedError

Role = Literal["viewer", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reviewer", "admin")
ActorKind = Literal["human", "agent", "system"]

# How each kind is written in the audit log and on revisions: ``human:rita``, ``agent:bot``,
# ``memp:demo``. The prefixes keep a person's name from ever reading like the program's.
_PREFIX: dict[str, str] = {"human": "human", "agent": "agent", "system": "memp"}


@dataclass(frozen=True)
class Actor:
    """A person, an agent (API key) or the program itself, with a role.

    There is deliberately no default role: whoever builds an Actor says what it may do.
    """

    name: str
    role: Role
    kind: ActorKind = "human"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PermissionDeniedError(f"unknown role {self.role!r}; valid: {', '.join(ROLES)}")
        if self.kind not in _PREFIX:
            raise PermissionDeniedError(f"unknown kind of actor {self.kind!r}")
        if not self.name.strip():
            raise PermissionDeniedError("an actor needs a name")

    @property
    def author(self) -> str:
        """The name recorded on revisions and audit events (``human:<name>`` for people)."""
        return f"{_PREFIX[self.kind]}:{self.name}"

    def at_least(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, action: str, role: Role = "reviewer") -> None:
        """Refuse ``action`` unless this actor holds ``role`` or a stronger one."""
        if not self.at_least(role):
            raise PermissionDeniedError(
                f"{self.name} has the {self.role} role and cannot {action}; "
                f"ask {'an admin' if role == 'admin' else 'a reviewer or an admin'}"
            )

    def require_person(self, action: str, role: Role = "reviewer") -> None:
        """Like :meth:`require`, and only a person may do it (review actions)."""
        if self.kind != "human":
            raise PermissionDeniedError(
                f"{self.author} cannot {action}: only a person (reviewer or admin) may"
            )
        self.require(action, role)


def os_user() -> Actor:
    """The person at this machine's command line: the OS user, an admin of their own files."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): still say who it was
        name = "unknown-os-user"
    return Actor(name=name, role="admin")


def system(what: str, role: Role = "reviewer") -> Actor:
    """The program acting on its own (the demo, an isolated experiment's updates)."""
    return Actor(name=what, role=role, kind="system")
