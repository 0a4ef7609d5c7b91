"""Grades leave the classroom as CSV: made safe to open in a spreadsheet."""
from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert_csv(text: str) -> str:
    """The CSV with every text cell that a spreadsheet would read as a formula quoted as
    text (a leading apostrophe, as OWASP advises); numbers, negative ones too, stay numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(text)):
        writer.writerow([f"'{cell}" if cell.startswith(FORMULA_START) and not is_number(cell) else cell
                         for cell in row])
    return out.getvalue()


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def artifact_columns(store: "Store", csv_text: str) -> str:
    """nbgrader's CSV with each row's personalised configuration and artifact hash added."""
    latest = {}
    for job in store.jobs():
        if job.get("artifact") and job["timestamp"] == (store.submissions(job["student"], job["assignment"]) or [""])[-1]:
            latest[(job["assignment"], job["student"])] = job["artifact"]
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    out = io.StringIO()
    fields = list(rows[0].keys()) if rows else ["assignment", "student_id"]
    writer = csv.DictWriter(out, fieldnames=fields + ["configuration", "artifact_hash"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        artifact = latest.get((row.get("assignment"), row.get("student_id"))) or {}
        configuration = artifact.get("configuration")
        row["configuration"] = json.dumps(configuration, sort_keys=True) if configuration else ""
        row["artifact_hash"] = artifact.get("short_hash", "")
        writer.writerow(row)
    return out.getvalue()
