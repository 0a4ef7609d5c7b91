"""Grading figures for `make bench`: throughput against nbgrader's serial autograde,
and submit-to-feedback latency with an empty queue.

Throughput: 60 submissions of the small lab (correct, partial and blank, in turn)
are placed in the course volume's inbound folder and queued at once with the
instructor's Regrade; the clock runs until the service has graded them all, every
sandbox in place. The comparison is nbgrader's own `autograde` over the same 60
submissions, serially in one process, in a container from the same CPU image.
"""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import nbformat
import requests

from tests.integration import assignment as lab
from tests.integration.fixtures import Person, docker, wait_for

KINDS = [lab.correct_answers, lab.partial_answers, lab.blank_answers]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            # docker cp keeps the archive's owner: the service's (uid 1000), or it could
            # not add a later submission beside these.
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 1000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _api(deployment, teacher: Person, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(method, f"{deployment.service_url('grading')}/{path}", timeout=300,
                                headers={"Authorization": f"token {teacher.token}"}, **kwargs)
    response.raise_for_status()
    return response


def release(deployment, teacher: Person, course: str, assignment: str = lab.ASSIGNMENT,
            notebook: str = lab.NOTEBOOK, source=None) -> None:
    """Put an assignment's source notebook into the course and generate and release it."""
    def formgrader(method, path, **kwargs):
        return requests.request(method, f"{deployment.service_url('formgrader')}/{path}", timeout=300,
                                headers={"Authorization": f"token {teacher.token}"}, **kwargs)
    for folder in (course, f"{course}/source", f"{course}/source/{assignment}"):
        formgrader("PUT", f"api/contents/{folder}", json={"type": "directory"})
    formgrader("PUT", f"api/contents/{course}/source/{assignment}/{notebook}.ipynb",
               json={"type": "notebook", "format": "json", "content": source or lab.source_notebook()})
    formgrader("POST", f"formgrader/api/assignment/{assignment}/unrelease")
    for step in ("assign", "release"):
        assert formgrader("POST", f"formgrader/api/assignment/{assignment}/{step}").json()["success"]


def submissions(count: int) -> dict[str, bytes]:
    return {f"b{i:03d}": nbformat.writes(lab.student_notebook(KINDS[i % len(KINDS)]())).encode()
            for i in range(count)}


def copy_to_inbound(container: str, docker_cli: tuple[str, ...] = ("docker",)):
    """How submissions reach the course's inbound folder: `docker cp` of a tar into the
    grading service's container (on a swarm, through its node's engine)."""
    return lambda archive: subprocess.run([*docker_cli, "cp", "-", f"{container}:/srv/course/exchange/inbound/"],
                                          input=archive, check=True)


def throughput(deployment, teacher: Person, count: int = 60, copy_in=None) -> dict:
    copy_in = copy_in or copy_to_inbound(f"{deployment.name}-grading")
    stamp = time.strftime("%Y%m%dT%H%M%S.000000Z", time.gmtime())
    files = {}
    for student, notebook in submissions(count).items():
        files[f"{student}/{lab.ASSIGNMENT}/{stamp}/{lab.NOTEBOOK}.ipynb"] = notebook
        files[f"{student}/{lab.ASSIGNMENT}/{stamp}/timestamp.txt"] = time.strftime(
            "%Y-%m-%d %H:%M:%S.000000 UTC", time.gmtime()).encode()
    copy_in(_tar(files))
    began = time.monotonic()
    queued = _api(deployment, teacher, "POST", f"api/assignments/{lab.ASSIGNMENT}/regrade").json()["queued"]
    names = {f"b{i:03d}" for i in range(count)}
    assert names <= set(queued), "the regrade did not queue every bench submission"

    def finished():
        subs = _api(deployment, teacher, "GET", "api/progress").json()["assignments"][lab.ASSIGNMENT]["submissions"]
        mine = [s for s in subs if s["student"] in names and s["timestamp"] == stamp]
        return mine if len(mine) == count and all(s["status"] in ("done", "failed") for s in mine) else None
    jobs = wait_for(finished, 3600, "the bench submissions to be graded", interval=2)
    seconds = time.monotonic() - began
    wrong = [s["student"] for s in jobs
             if s["status"] != "done" or s["score"] != [5, 3, 0][int(s["student"][1:]) % 3]]
    return {"submissions": count, "seconds": round(seconds, 1), "per_minute": round(count / seconds * 60, 1),
            "wrong_or_failed": wrong}


def place_and_regrade(deployment, teacher: Person, assignment: str, notebook: str,
                      notebooks: dict[str, bytes]) -> tuple[str, float, list[str]]:
    """Put one submission per student in the inbound folder, queue them with Regrade; (stamp, start, queued)."""
    stamp = time.strftime("%Y%m%dT%H%M%S.000000Z", time.gmtime())
    files = {}
    for student, data in notebooks.items():
        files[f"{student}/{assignment}/{stamp}/{notebook}.ipynb"] = data
        files[f"{student}/{assignment}/{stamp}/timestamp.txt"] = time.strftime(
            "%Y-%m-%d %H:%M:%S.000000 UTC", time.gmtime()).encode()
    copy_to_inbound(f"{deployment.name}-grading")(_tar(files))
    began = time.monotonic()
    queued = _api(deployment, teacher, "POST", f"api/assignments/{assignment}/regrade").json()["queued"]
    return stamp, began, queued


def wait_queued(deployment, teacher: Person, assignment: str, queued: list[str]) -> list[dict]:
    """Wait until every queued student's latest submission is graded again; their rows."""
    def finished():
        subs = _api(deployment, teacher, "GET", "api/progress").json()["assignments"][assignment]["submissions"]
        latest: dict[str, dict] = {}
        for sub in subs:
            if sub["student"] in queued and sub["timestamp"] >= latest.get(sub["student"], {}).get("timestamp", ""):
                latest[sub["student"]] = sub
        rows = list(latest.values())
        return rows if len(rows) == len(set(queued)) and all(r["status"] in ("done", "failed") for r in rows) else None
    return wait_for(finished, 3600, f"the regrade of {assignment} to finish", interval=2)


def personalised(deployment, teacher: Person, course: str, roster: list[str]) -> dict:
    """What personalisation costs for a class: the personalised lab graded for students whose
    solution run is not ready (cold: computed at grading time, one more sandbox run each), and for
    the roster's students once the service has prepared theirs while idle (warm), against the same
    class size of the unpersonalised lab (`service`)."""
    from tests.integration import personal_lab as plab

    released_at = time.monotonic()
    release(deployment, teacher, course, plab.ASSIGNMENT, plab.NOTEBOOK, plab.source_notebook())
    own = nbformat.writes(plab.student_notebook()).encode()
    results = {}
    # Cold: names that are not on the roster, so nothing was prepared for them.
    # Regrade queues every student's latest submission of the assignment: each phase's figure
    # counts all it queued (the cold names again in the warm phase, prepared by then).
    cold = {f"p{i:03d}": own for i in range(len(roster))}
    stamp, began, queued = place_and_regrade(deployment, teacher, plab.ASSIGNMENT, plab.NOTEBOOK, cold)
    jobs = wait_queued(deployment, teacher, plab.ASSIGNMENT, queued)
    seconds = time.monotonic() - began
    results["cold"] = {"submissions": len(queued), "without_reference": len(cold), "seconds": round(seconds, 1),
                       "per_minute": round(len(queued) / seconds * 60, 1),
                       "wrong_or_failed": [j["student"] for j in jobs if j["student"] in cold
                                           and j["score"] != plab.TOTAL_POINTS]}
    # Warm: the roster's references, prepared by the service while idle.
    reference = f"/srv/course/grading/reference/{plab.ASSIGNMENT}/{plab.NOTEBOOK}"
    ready = lambda: len(set(docker("exec", f"{deployment.name}-grading", "sh", "-c",  # noqa: E731
                                   f"ls {reference} 2>/dev/null || true").split())
                        & {f"{name}.json" for name in roster})
    wait_for(lambda: ready() >= len(roster), 3600, "the roster's references to be prepared", interval=5)
    results["prepared_ahead"] = {"students": len(roster),
                                 "seconds_since_release": round(time.monotonic() - released_at, 1)}
    stamp, began, queued = place_and_regrade(deployment, teacher, plab.ASSIGNMENT, plab.NOTEBOOK,
                                             {name: own for name in roster})
    jobs = wait_queued(deployment, teacher, plab.ASSIGNMENT, queued)
    seconds = time.monotonic() - began
    results["warm"] = {"submissions": len(queued), "seconds": round(seconds, 1),
                       "per_minute": round(len(queued) / seconds * 60, 1),
                       "wrong_or_failed": [j["student"] for j in jobs if j["student"] in roster
                                           and j["score"] != plab.TOTAL_POINTS]}
    return results


def nbgrader_serial(image: str, course: str, count: int = 60) -> dict:
    """nbgrader's own autograde of the same submissions, one process, in the CPU image."""
    with tempfile.TemporaryDirectory(prefix="nbgrader-serial-") as folder:
        root = Path(folder)
        source = root / "source" / lab.ASSIGNMENT
        source.mkdir(parents=True)
        nbformat.write(lab.source_notebook(), source / f"{lab.NOTEBOOK}.ipynb")
        for student, notebook in submissions(count).items():
            target = root / "submitted" / student / lab.ASSIGNMENT
            target.mkdir(parents=True)
            (target / f"{lab.NOTEBOOK}.ipynb").write_bytes(notebook)
        subprocess.run(["chmod", "-R", "a+rwX", folder], check=True)
        script = (f"cd /course && nbgrader generate_assignment {lab.ASSIGNMENT} --CourseDirectory.course_id={course} "
                  "--log-level=ERROR >/dev/null && start=$(date +%s.%N) && "
                  f"nbgrader autograde {lab.ASSIGNMENT} --CourseDirectory.course_id={course} --force "
                  "--log-level=ERROR >/dev/null 2>&1; end=$(date +%s.%N); echo $start $end")
        output = docker("run", "--rm", "--network", "none", "--cpus", "2", "-e", "HOME=/tmp",
                        "-v", f"{folder}:/course", "--entrypoint", "sh", image, "-c", script)
        start, end = (float(x) for x in output.split()[-2:])
    seconds = end - start
    return {"submissions": count, "seconds": round(seconds, 1), "per_minute": round(count / seconds * 60, 1)}


def latency(deployment, teacher: Person, runs: int = 5) -> dict:
    """Submit as the instructor (anyone may submit) with nothing queued; time until feedback is there."""
    times = []
    payload = _tar({f"{lab.NOTEBOOK}.ipynb": nbformat.writes(lab.student_notebook(lab.correct_answers())).encode()})
    for _ in range(runs):
        began = time.monotonic()
        stamp = _api(deployment, teacher, "POST", f"api/assignments/{lab.ASSIGNMENT}/submissions",
                     data=payload).json()["timestamp"]

        def has_feedback():
            listing = _api(deployment, teacher, "GET", "api/assignments").json()["assignments"]
            subs = next(a for a in listing if a["assignment_id"] == lab.ASSIGNMENT)["submissions"]
            return any(s["timestamp"] == stamp and s["feedback"] for s in subs)
        wait_for(has_feedback, 600, "feedback", interval=0.2)
        times.append(time.monotonic() - began)
    return {"runs_s": [round(t, 2) for t in times], "p50_s": round(percentile(times, 0.5), 2),
            "p95_s": round(percentile(times, 0.95), 2)}


def flood_payloads() -> list[bytes]:
    """What a flooding student sends: a tar of 48 MiB of zeros (50 KB gzipped) and one of
    50,000 empty folders; both are refused at a limit, after reading their headers."""
    return [lab.archive([("zeros.bin", 48 * 2**20)]), lab.archive([(f"d{i}", None) for i in range(50_000)])]


def submit_under_flood(deployment, honest: Person, flooder: Person, runs: int = 5, threads: int = 4) -> dict:
    """An honest student's submit latency (request to 201) while another floods the service
    with uploads that unpack to far more than the limits, from several threads at once."""
    import threading

    payload = _tar({f"{lab.NOTEBOOK}.ipynb": nbformat.writes(lab.student_notebook(lab.correct_answers())).encode()})
    url = f"{deployment.service_url('grading')}/api/assignments/{lab.ASSIGNMENT}/submissions"
    stop, refused = threading.Event(), []

    def flood(data: bytes) -> None:
        while not stop.is_set():
            response = requests.post(url, data=data, headers={"Authorization": f"token {flooder.token}"}, timeout=300)
            refused.append(response.status_code)

    workers = [threading.Thread(target=flood, args=(data,), daemon=True)
               for data in flood_payloads() * (threads // 2)]
    for worker in workers:
        worker.start()
    times = []
    try:
        time.sleep(2)
        for _ in range(runs):
            began = time.monotonic()
            response = requests.post(url, data=payload, headers={"Authorization": f"token {honest.token}"}, timeout=300)
            times.append(time.monotonic() - began)
            assert response.status_code == 201, response.text
            time.sleep(1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=300)
    return {"runs_s": [round(t, 3) for t in times], "p50_s": round(percentile(times, 0.5), 3),
            "p95_s": round(percentile(times, 0.95), 3), "flood_requests": len(refused),
            "flood_statuses": sorted(set(refused))}


def run(deployment, teacher_name: str = "teacher", count: int = 60) -> dict:
    teacher = Person(deployment, teacher_name)
    teacher.login()
    teacher.create_token()
    course = deployment.config["course_id"]
    release(deployment, teacher, course)
    results = {"latency": latency(deployment, teacher)}
    honest, flooder = Person(deployment, "s01"), Person(deployment, "s02")
    for person in (honest, flooder):
        person.login()
        person.create_token()
    results["submit_under_flood"] = submit_under_flood(deployment, honest, flooder)
    results["service"] = throughput(deployment, teacher, count)
    results["nbgrader_serial"] = nbgrader_serial(deployment.settings()["images"]["cpu"], course, count)
    results["speedup"] = round(results["service"]["per_minute"] / results["nbgrader_serial"]["per_minute"], 2)
    roster = sorted(n for n in deployment.passwords if n.startswith("s"))[:count]
    results["personalised"] = personalised(deployment, teacher, course, roster)
    for phase in ("cold", "warm"):
        results["personalised"][phase]["cost_vs_unpersonalised"] = round(
            results["service"]["per_minute"] / results["personalised"][phase]["per_minute"], 2)
    return results


if __name__ == "__main__":  # against a deployment kept with KEEP_DEPLOYMENT=1
    from tests.integration.fixtures import TEST_CONFIG, deploy
    print(json.dumps(run(deploy(TEST_CONFIG)), indent=2))
