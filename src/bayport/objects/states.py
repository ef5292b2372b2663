"""The bay status machine, declared once and used by the API (which starts transitions)
and the conductor (which finishes them). A transition not in this table is a bug or a
409 for the client, never a silent overwrite.
"""

from __future__ import annotations

from enum import StrEnum


class BayStatus(StrEnum):
    CREATE_IN_PROGRESS = "CREATE_IN_PROGRESS"
    CREATE_COMPLETE = "CREATE_COMPLETE"
    CREATE_FAILED = "CREATE_FAILED"
    UPDATE_IN_PROGRESS = "UPDATE_IN_PROGRESS"
    UPDATE_COMPLETE = "UPDATE_COMPLETE"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"
    DELETE_FAILED = "DELETE_FAILED"


S = BayStatus

IN_PROGRESS = frozenset({S.CREATE_IN_PROGRESS, S.UPDATE_IN_PROGRESS, S.DELETE_IN_PROGRESS})
TERMINAL = frozenset(set(S) - IN_PROGRESS)

# operation -> (states it may start from, the in-progress state, success, failure)
OPERATIONS: dict[str, tuple[frozenset[BayStatus], BayStatus, BayStatus | None, BayStatus]] = {
    "create": (frozenset(), S.CREATE_IN_PROGRESS, S.CREATE_COMPLETE, S.CREATE_FAILED),
    # UPDATE_FAILED is retryable: resizing again is how a user recovers.
    "update": (frozenset({S.CREATE_COMPLETE, S.UPDATE_COMPLETE, S.UPDATE_FAILED}),
               S.UPDATE_IN_PROGRESS, S.UPDATE_COMPLETE, S.UPDATE_FAILED),
    # Deleting is allowed from every state but an ongoing delete; success removes the row.
    "delete": (frozenset(set(S) - {S.DELETE_IN_PROGRESS}), S.DELETE_IN_PROGRESS, None,
               S.DELETE_FAILED),
}


def operation_of(status: str | None) -> str | None:
    """Which operation an in-progress status belongs to (None when terminal)."""
    for op, (_, running, _, _) in OPERATIONS.items():
        if status == running:
            return op
    return None
