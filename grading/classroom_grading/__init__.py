"""Assignments for the classroom: an nbgrader exchange whose identity comes from the
hub, and a grading service that autogrades each submission in a throwaway sandbox.

Modules, by where they run:

- `exchange`: nbgrader exchange plugins. Students' servers talk to the grading
  service over HTTP with their hub token; the formgrader (instructors) works on the
  course volume directly.
- `harness`: inside a sandbox container; executes one notebook and prints it.
- `records`: the values test cells record, and how the grader compares them.
- `sandbox`, `autograde`, `store`, `service`: the grading service (hub image).
"""

RECORD_MIME = "application/vnd.classroom.record+json"
