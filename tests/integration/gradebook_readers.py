"""Read the gradebook's scores while a worker replaces submissions (run in the hub image).

    python gradebook_readers.py GRADING_DIR SECONDS

A worker grading a resubmission removes the student's earlier submission from the gradebook
and adds the new one (`worker.forget_other_submission`). Meanwhile the grading page reads
every score (`gradebook.scores`). Prints how many reads succeeded and failed, and each
distinct error; exits 1 on any failed or wrong read.
"""
import datetime as dt
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from classroom_grading import gradebook  # noqa: E402
from classroom_grading.store import Store  # noqa: E402

STUDENTS = [f"s{n}" for n in range(8)]
DUE = dt.datetime(2026, 1, 1)


def replace_submissions(store: Store, stop) -> None:
    """Remove and add submissions, one student after another, as resubmissions are graded."""
    with gradebook.open_gradebook(store) as gb:
        n = 0
        while not stop.is_set():
            student = STUDENTS[n % len(STUDENTS)]
            gb.remove_submission("a1", student)
            gb.add_submission("a1", student, timestamp=DUE + dt.timedelta(days=1, seconds=n))
            n += 1


def main() -> int:
    store = Store(Path(tempfile.mkdtemp()), "course")
    store.course.mkdir(parents=True)
    with gradebook.open_gradebook(store) as gb:
        gb.update_or_create_assignment("a1", duedate=DUE)
        for student in STUDENTS:
            gb.update_or_create_student(student)
            gb.add_submission("a1", student, timestamp=DUE + dt.timedelta(days=1))
    stop = multiprocessing.Event()
    writer = multiprocessing.Process(target=replace_submissions, args=(store, stop))
    writer.start()
    reads, errors = 0, []
    end = time.monotonic() + float(sys.argv[2])
    try:
        while time.monotonic() < end:
            try:
                found = gradebook.scores(store)
                reads += 1
                for (assignment, student), row in found.items():
                    assert assignment == "a1" and student in STUDENTS, (assignment, student)
                    assert row["timestamp"] and row["seconds_late"] >= 86400, row
            except Exception as error:  # every failure counts; the distinct ones are printed
                errors.append(repr(error)[:300])
    finally:
        stop.set()
        writer.join(30)
    print(f"{reads} reads, {len(errors)} failed", *sorted(set(errors))[:5], sep="\n")
    return 1 if errors or reads == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
