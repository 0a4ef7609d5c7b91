"""The formgrader's side of the classroom (loaded from its nbgrader_config.py).

Student code never runs in the formgrader, next to the gradebook: submissions are
autograded by the grading service, in sandboxes. nbgrader's own Autograde would run
them here, and on the refusal (`autograde.RefuseLocalExecution`) its failure handling
deletes the student's autograded copy, so they would drop out of hand grading. So the
formgrader's Autograde button is answered before anything is touched.
"""
from __future__ import annotations

from typing import Any

REFUSAL = ("Autograding runs in the grading service, in a sandbox: each submission is graded as it "
           "arrives. To grade again, use Regrade on the grading page (/services/grading/).")


def refuse_local_autograde() -> None:
    """Make the formgrader's Autograde (NbGraderAPI.autograde) refuse without side effects."""
    from nbgrader.apps.api import NbGraderAPI

    def autograde(self: Any, assignment_id: str, student_id: str, force: bool = True,
                  create: bool = True) -> dict[str, Any]:
        return {"success": False, "error": REFUSAL, "log": REFUSAL}

    NbGraderAPI.autograde = autograde
