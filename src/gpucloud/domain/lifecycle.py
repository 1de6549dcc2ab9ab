"""The instance state machine, written as data.

Statuses are Linode's words. The API moves an instance into a transitional status in the
same transaction that enqueues the job doing the work; the job moves it on from there.
Every status an instance passes through is written, so a poller that looks often enough
sees each one (none is skipped by design).
"""

from __future__ import annotations

from dataclasses import dataclass

PROVISIONING = "provisioning"
BOOTING = "booting"
RUNNING = "running"
SHUTTING_DOWN = "shutting_down"
OFFLINE = "offline"
REBOOTING = "rebooting"
RESIZING = "resizing"
REBUILDING = "rebuilding"
DELETING = "deleting"
FAILED = "failed"

STATUSES = (PROVISIONING, BOOTING, RUNNING, SHUTTING_DOWN, OFFLINE, REBOOTING, RESIZING, REBUILDING, DELETING,
            FAILED)

# status -> the statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    PROVISIONING: frozenset({BOOTING, OFFLINE, FAILED, DELETING}),
    BOOTING: frozenset({RUNNING, OFFLINE, FAILED, DELETING}),
    RUNNING: frozenset({SHUTTING_DOWN, REBOOTING, RESIZING, REBUILDING, OFFLINE, DELETING, FAILED}),
    SHUTTING_DOWN: frozenset({OFFLINE, RUNNING, FAILED, DELETING}),
    OFFLINE: frozenset({BOOTING, REBOOTING, RESIZING, REBUILDING, RUNNING, DELETING, FAILED}),
    REBOOTING: frozenset({RUNNING, OFFLINE, FAILED, DELETING}),
    RESIZING: frozenset({BOOTING, OFFLINE, RUNNING, FAILED, DELETING}),
    REBUILDING: frozenset({BOOTING, OFFLINE, RUNNING, FAILED, DELETING}),
    DELETING: frozenset(),
    FAILED: frozenset({BOOTING, REBOOTING, REBUILDING, OFFLINE, RUNNING, DELETING}),
}

# status -> the statuses a job step may move an instance into it from: those that may go there,
# and itself (a retried step); never `deleting`, which belongs to the delete job
ENTERED_FROM: dict[str, tuple[str, ...]] = {
    new: tuple(sorted({new} | {old for old, targets in TRANSITIONS.items() if new in targets} - {DELETING}))
    for new in TRANSITIONS
}

# Statuses in which the instance's guest may be running on its host.
MAY_RUN = frozenset({BOOTING, RUNNING, SHUTTING_DOWN, REBOOTING, RESIZING, REBUILDING, DELETING, FAILED})


class TransitionError(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if current == new:
        return
    if new not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"an instance cannot go from {current} to {new}")


@dataclass(frozen=True)
class Action:
    """A customer action: the job that does it, the event that tells it, where it starts."""

    name: str
    job_kind: str
    event_action: str
    allowed_from: frozenset[str]
    enters: str
    verb: str = ""  # how a refusal names it ("Cannot <verb> this Linode while it is <status>."); name if empty


ACTIONS: dict[str, Action] = {
    "create": Action("create", "create", "linode_create", frozenset(), PROVISIONING),
    "boot": Action("boot", "boot", "linode_boot", frozenset({OFFLINE, FAILED}), BOOTING),
    "shutdown": Action("shutdown", "shutdown", "linode_shutdown", frozenset({RUNNING, FAILED}), SHUTTING_DOWN),
    "reboot": Action("reboot", "reboot", "linode_reboot", frozenset({RUNNING}), REBOOTING),
    "resize": Action("resize", "resize", "linode_resize", frozenset({RUNNING, OFFLINE}), RESIZING),
    # a new disk from an image on the same host (same addresses, same GPUs), booted unless asked not to
    "rebuild": Action("rebuild", "rebuild", "linode_rebuild", frozenset({RUNNING, OFFLINE, FAILED}), REBUILDING),
    # (re)boot from the rescue image, the instance's disk attached beside it
    "rescue": Action("rescue", "rescue", "linode_boot", frozenset({RUNNING, OFFLINE, FAILED}), REBOOTING),
    # the new root password goes into the seed; the guest takes it at its next boot
    "password": Action("password", "password", "password_reset", frozenset({OFFLINE}), OFFLINE,
                       "reset the root password of"),
    "delete": Action("delete", "delete", "linode_delete", frozenset(set(STATUSES) - {DELETING}), DELETING),
}


def action_for(name: str, current: str) -> Action:
    """The action, if the instance's status allows it now; TransitionError otherwise."""
    action = ACTIONS[name]
    if current not in action.allowed_from:
        raise TransitionError(f"cannot {name} an instance that is {current}")
    check_transition(current, action.enters)
    return action


def settled_status(booted: bool) -> str:
    """Where an instance rests when nothing is in flight: what the customer last asked for."""
    return RUNNING if booted else OFFLINE
