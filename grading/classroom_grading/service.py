"""The grading service: a JupyterHub service at /services/grading/.

Students (their servers' hub tokens, through the exchange plugin) list released
assignments, download them, submit, and fetch their own feedback: identity is the
hub's, timestamps are the server's. Instructors (the `instructors` group) see each
assignment's progress, change its settings (autograde on or off, feedback released
automatically or by hand, a deadline with its time zone), regrade, and export the
grades as CSV. New submissions are graded as they arrive, in parallel worker
processes, each notebook in its own sandbox container.
"""
from __future__ import annotations

import argparse
import asyncio
import html
import json
import logging
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.ioloop import IOLoop

from . import gradebook, integrity, sandbox, worker
from .resolver import use_system_resolver
from .export import artifact_columns, inert_csv
from .store import LIMITS, TIMESTAMP_DIR, Store, StoreError, check_name

log = logging.getLogger("classroom_grading")
STATES = ("queued", "running", "done", "failed")


def capacity(memory_per_sandbox: str, cores: int, memory: int) -> int:
    """Sandboxes a machine runs at once: one per core, fewer when half its memory would not
    hold that many."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    text = memory_per_sandbox.strip().lower()
    per = float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    return max(1, min(cores, int(memory * 0.5 // per)))


def default_workers(memory_per_sandbox: str) -> int:
    """One worker per core of this host, memory permitting."""
    return capacity(memory_per_sandbox, os.cpu_count() or 1,
                    os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def engine_slots(engines: list[sandbox.Engine], memory_per_sandbox: str) -> list[sandbox.Engine]:
    """One entry per sandbox the swarm's engines run at once, the engines taking turns
    (engine 1, engine 2, ..., engine 1, ...), each by its own cores and memory."""
    counts = []
    for engine in engines:
        info = sandbox.engine_client(engine).info()
        counts.append(capacity(memory_per_sandbox, info["NCPU"], info["MemTotal"]))
    return [engine for round in range(max(counts, default=0))
            for engine, count in zip(engines, counts) if round < count]


class Grader:
    """The queue of submissions and the pool of worker processes that grade them."""

    def __init__(self, store: Store, options: dict[str, Any], workers: int, slots: list[sandbox.Engine] | None = None):
        """`slots`: the swarm's engines, one entry per worker (none: this host's engine)."""
        self.store, self.options, self.workers = store, options, workers
        self.slots = slots or []
        self.counter = multiprocessing.get_context("spawn").Value("i", 0)
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self.busy: set[tuple[str, str]] = set()
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker.init, initargs=(self.slots, self.counter))

    def remove_sandboxes(self, exited_only: bool = False) -> int:
        """Remove the deployment's sandboxes on every engine (after a worker died, the exited ones)."""
        engines = list(dict.fromkeys(self.slots)) or [sandbox.Engine()]
        return sum(sandbox.remove_all(self.options["deployment"], sandbox.engine_client(engine), exited_only)
                   for engine in engines)

    def enqueue(self, student: str, assignment: str, stamp: str) -> None:
        self.store.set_job(student, assignment, stamp, status="queued", queued_at=time.time())
        self.queue.put_nowait((student, assignment, stamp))

    def recover(self) -> None:
        """After a start or a crash: queue what was queued or running, and what arrived meanwhile."""
        for student, assignment, stamp in self.store.all_submissions():
            job = self.store.job(student, assignment, stamp)
            if job is None and not self.store.assignment_settings(assignment)["autograde"]:
                self.store.set_job(student, assignment, stamp, status="received")
            elif job is None or job["status"] in ("queued", "running"):
                self.enqueue(student, assignment, stamp)

    async def consume(self) -> None:
        while True:
            student, assignment, stamp = await self.queue.get()
            key = (student, assignment)
            if stamp != (self.store.submissions(student, assignment) or [""])[-1]:
                self.store.set_job(student, assignment, stamp, status="superseded")
                continue
            if key in self.busy:  # an earlier submission of the same is being graded
                await asyncio.sleep(0.5)
                self.queue.put_nowait((student, assignment, stamp))
                continue
            self.busy.add(key)
            self.store.set_job(student, assignment, stamp, status="running", started_at=time.time())
            try:
                result = await IOLoop.current().run_in_executor(
                    self.pool, worker.grade, str(self.store.root), self.store.course_id,
                    student, assignment, stamp, self.options)
            except BrokenProcessPool:
                self.pool = self._new_pool()
                await IOLoop.current().run_in_executor(None, lambda: self.remove_sandboxes(exited_only=True))
                self.store.set_job(student, assignment, stamp, status="failed", finished_at=time.time(),
                                   error="the worker process died; regrade to try again")
            except Exception as error:  # noqa: BLE001 - one submission's failure stops only itself
                log.exception("grading %s/%s/%s failed", student, assignment, stamp)
                self.store.set_job(student, assignment, stamp, status="failed", finished_at=time.time(),
                                   error=f"{type(error).__name__}: {error}")
            else:
                self.store.set_job(student, assignment, stamp, status="done", finished_at=time.time(),
                                   error=None, **result)
            finally:
                self.busy.discard(key)

    async def prepare(self, students) -> int:
        """Compute personalised references ahead of the deadline, one at a time while a worker
        is idle: each student's solution run (their configuration) is then ready when they submit,
        and a deadline burst costs what an unpersonalised one does. Returns how many it ran."""
        ran = 0
        for assignment in self.store.released():
            for student in sorted(await students()):
                if not self.queue.empty() or len(self.busy) >= self.workers:
                    return ran
                if not worker.needs_reference(self.store, assignment, student, self.options):
                    continue
                self.busy.add(("", f"prepare {assignment} {student}"))
                try:
                    await IOLoop.current().run_in_executor(
                        self.pool, worker.prepare, str(self.store.root), self.store.course_id,
                        assignment, student, self.options)
                    ran += 1
                except Exception as error:  # noqa: BLE001 - grading computes it again when they submit
                    log.warning("preparing %s's reference of %s failed: %s", student, assignment, error)
                finally:
                    self.busy.discard(("", f"prepare {assignment} {student}"))
        return ran

    async def prepare_forever(self, students, every: float = 30.0) -> None:
        while True:
            try:
                await self.prepare(students)
            except Exception:  # noqa: BLE001 - try again later
                log.exception("preparing personalised references failed")
            await asyncio.sleep(every)

    def start(self, students=None) -> None:
        self.recover()
        for _ in range(self.workers):
            IOLoop.current().spawn_callback(self.consume)
        if students is not None and self.options.get("identity_secret"):
            IOLoop.current().spawn_callback(self.prepare_forever, students)


class Base(HubOAuthenticated, web.RequestHandler):
    @property
    def store(self) -> Store:
        return self.settings["store"]

    @property
    def grader(self) -> Grader:
        return self.settings["grader"]

    @property
    def student(self) -> str:
        return check_name("user", self.current_user["name"])

    async def require_instructor(self) -> None:
        if self.current_user["name"] not in await self.settings["instructors"]():
            raise web.HTTPError(403, "instructors only")

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """A client's bad input (a StoreError anywhere in a handler) is its error, not ours."""
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, StoreError):
            status_code = error.status
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or (str(error) if error else self._reason)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def send_tar(self, data: bytes, filename: str) -> None:
        self.set_header("Content-Type", "application/gzip")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.finish(data)


class AssignmentsHandler(Base):
    """GET: the released assignments, with this person's submissions and feedback."""

    @web.authenticated
    def get(self) -> None:
        student = self.student
        result = []
        for assignment in self.store.released():
            feedback = self.store.feedback(student, assignment)
            result.append({
                "course_id": self.store.course_id, "assignment_id": assignment,
                "notebooks": self.store.release_notebooks(assignment),
                "deadline": gradebook.deadline(self.store, assignment),
                "submissions": [{"timestamp": stamp, "feedback": feedback.get(stamp, {}),
                                 "status": (self.store.job(student, assignment, stamp) or {}).get("status")}
                                for stamp in self.store.submissions(student, assignment)],
            })
        self.write_json({"course_id": self.store.course_id, "assignments": result})


class ReleaseHandler(Base):
    @web.authenticated
    def get(self, assignment: str) -> None:
        try:
            self.send_tar(self.store.release_tar(assignment), f"{assignment}.tar.gz")
        except FileNotFoundError as error:
            raise web.HTTPError(404, str(error)) from None


class SubmitHandler(Base):
    """POST a tar(.gz) of the assignment folder; the server stamps the time."""

    @web.authenticated
    async def post(self, assignment: str) -> None:
        # Unpacking takes time: off the event loop, so nobody else waits for it.
        stamp = await IOLoop.current().run_in_executor(
            None, self.store.receive, self.student, assignment, self.request.body)
        if self.store.assignment_settings(assignment)["autograde"]:
            self.grader.enqueue(self.student, assignment, stamp)
        else:
            self.store.set_job(self.student, assignment, stamp, status="received")
        self.write_json({"assignment_id": assignment, "timestamp": stamp}, status=201)


class FeedbackHandler(Base):
    @web.authenticated
    def get(self, assignment: str) -> None:
        try:
            self.send_tar(self.store.feedback_tar(self.student, assignment), f"{assignment}-feedback.tar.gz")
        except FileNotFoundError as error:
            raise web.HTTPError(404, str(error)) from None


def progress(store: Store) -> dict[str, Any]:
    """Each assignment's grading progress, settings, deadline and unprotected test cells; each
    submission's state, with the score from the gradebook (hand grading included) for the
    submission it holds, and the score it got when graded for the others."""
    graded = gradebook.scores(store)
    assignments: dict[str, Any] = {}
    for job in store.jobs():
        entry = assignments.setdefault(job["assignment"], {**{s: 0 for s in STATES}, "submissions": []})
        if job["status"] in STATES:
            entry[job["status"]] += 1
        row = {k: job.get(k) for k in ("student", "timestamp", "status", "score", "max_score", "seconds_late",
                                       "error", "sandbox", "awaiting_hand_grading", "artifact")}
        book = graded.get((job["assignment"], job["student"]))
        if book and book["timestamp"] and book["timestamp"].strftime(TIMESTAMP_DIR) == job["timestamp"]:
            row.update({k: book[k] for k in ("score", "max_score", "seconds_late")},
                       awaiting_hand_grading=book["needs_manual_grade"], in_gradebook=True)
        entry["submissions"].append(row)
    for assignment in store.released():
        assignments.setdefault(assignment, {**{s: 0 for s in STATES}, "submissions": []})
    for name, entry in assignments.items():
        entry["settings"] = store.assignment_settings(name)
        entry["deadline"] = gradebook.deadline(store, name)
        entry["unprotected"] = store.unprotected(name)
    return assignments


class ProgressHandler(Base):
    @web.authenticated
    async def get(self) -> None:
        await self.require_instructor()
        self.write_json({"assignments": progress(self.store)})


class SettingsHandler(Base):
    """PUT {"autograde": bool, "feedback": "auto"|"manual", "deadline": "2026-12-01T17:00:00+01:00"}."""

    @web.authenticated
    async def put(self, assignment: str) -> None:
        await self.require_instructor()
        try:
            changes = json.loads(self.request.body or b"{}")
            if not isinstance(changes, dict):
                raise StoreError("the body must be a JSON object of settings")
            check_name("assignment", assignment)
            if "deadline" in changes:  # the gradebook's, as the formgrader's due date
                due = gradebook.set_deadline(self.store, assignment, changes.pop("deadline"))
            else:
                due = gradebook.deadline(self.store, assignment)
            settings = self.store.update_settings(assignment, changes)
        except json.JSONDecodeError as error:
            raise web.HTTPError(400, f"the body is not JSON ({error})") from None
        self.write_json({**settings, "deadline": due})


class RegradeHandler(Base):
    """POST: grade every student's latest submission of the assignment again."""

    @web.authenticated
    async def post(self, assignment: str) -> None:
        await self.require_instructor()
        check_name("assignment", assignment)
        queued = []
        for student, name, stamp in self.store.all_submissions():
            if name == assignment and stamp == self.store.submissions(student, name)[-1]:
                self.grader.enqueue(student, name, stamp)
                queued.append(student)
        self.write_json({"queued": queued})


class ExportHandler(Base):
    @web.authenticated
    async def get(self) -> None:
        await self.require_instructor()
        from nbgrader.api import Gradebook
        from nbgrader.plugins.export import CsvExportPlugin

        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "grades.csv"
            def export() -> None:  # nbgrader's plugin reads row by row: again if a row goes meanwhile
                with Gradebook(gradebook.gradebook_url(self.store.course), self.store.course_id) as gb:
                    CsvExportPlugin(to=str(target)).export(gb)
            gradebook.patiently(export)
            data = inert_csv(artifact_columns(self.store, target.read_text())).encode()
        self.set_header("Content-Type", "text/csv")
        self.set_header("Content-Disposition", f'attachment; filename="{self.store.course_id}-grades.csv"')
        self.finish(data)


class ArtifactHandler(Base):
    """GET (instructors): the signed artifact of a student's latest graded submission, or ?timestamp=."""

    @web.authenticated
    async def get(self, assignment: str, student: str) -> None:
        await self.require_instructor()
        check_name("assignment", assignment)
        check_name("user", student)
        stamps = self.store.submissions(student, assignment)
        stamp = self.get_argument("timestamp", stamps[-1] if stamps else "")
        path = self.store.artifact_path(student, assignment, check_name("timestamp", stamp) if stamp else "none")
        if not path.is_file():
            raise web.HTTPError(404, f"no signed artifact of {assignment} by {student} (graded yet?)")
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Disposition", f'attachment; filename="{assignment}-{student}-{stamp}.json"')
        self.finish(path.read_bytes())


class PageHandler(Base):
    @web.authenticated
    async def get(self) -> None:
        await self.require_instructor()
        rows = []
        for name, entry in sorted(progress(self.store).items()):
            counts = " · ".join(f"{entry[s]} {s}" for s in STATES)
            settings = entry["settings"]
            rows.append(f"<tr><th>{html.escape(name)}</th><td>{counts}</td>"
                        f"<td>{'on' if settings['autograde'] else 'off'}</td>"
                        f"<td>{html.escape(settings['feedback'])}</td>"
                        f"<td>{html.escape(entry['deadline'] or '—')}</td></tr>")
            for notebook, cells in entry["unprotected"].items():
                rows.append(f"<tr class='warn'><td colspan=5>⚠ {html.escape(notebook)}: test cells "
                            f"{html.escape(', '.join(cells))} record nothing, so they are graded as nbgrader "
                            "grades them (no error, full marks) and a student can pass them without the work. "
                            "Make each record the values it checks with nncourse.record (course/AUTHORING.md)."
                            "</td></tr>")
            for sub in entry["submissions"]:
                score = "" if sub.get("score") is None else f"{sub['score']:g} / {sub['max_score']:g}"
                if sub.get("awaiting_hand_grading"):
                    score += " (awaiting hand grading)"
                artifact = sub.get("artifact") or {}
                signed = ""
                if artifact:
                    link = url_path_join(self.settings["prefix"], "api/assignments", name, "artifacts",
                                         f"{sub['student']}.json") + f"?timestamp={sub['timestamp']}"
                    configuration = artifact.get("configuration")
                    shown = ", ".join(f"{k} {v}" for k, v in sorted(configuration.items())
                                      if k not in ("lab", "student")) if isinstance(configuration, dict) else ""
                    signed = (f"<a href='{html.escape(link)}'>artifact {html.escape(artifact.get('short_hash', ''))}</a>"
                              + (f"<br><span class='cfg'>{html.escape(shown)}</span>" if shown else ""))
                rows.append(f"<tr class='sub'><td>{html.escape(sub['student'])}</td>"
                            f"<td>{html.escape(sub['status'])} {html.escape(sub.get('error') or '')}</td>"
                            f"<td>{score}</td><td>{html.escape(sub['timestamp'])}</td><td>{signed}</td></tr>")
        prefix = self.settings["prefix"]
        self.finish(PAGE.format(course=html.escape(self.store.course_id), rows="\n".join(rows),
                                public_key=html.escape(self.settings["public_key"] or "none (no artifact secret)"),
                                csv=url_path_join(prefix, "api/grades.csv"),
                                formgrader=self.settings["formgrader_url"]))


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Grading · {course}</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}tr.sub td{{color:#444;font-size:.9em}}
tr.warn td{{color:#8a4b00;background:#fff6e0}}.cfg{{font-size:.85em;color:#666}}</style>
</head><body><h1>Grading · {course}</h1>
<p><a href="{csv}">Export grades (CSV)</a> · <a href="{formgrader}" target="_blank">Formgrader</a>
(create, release, grade by hand, feedback)</p>
<p>Artifacts are signed with the public key <code>{public_key}</code>; verify one with
<code>make verify-artifact ARTIFACT=file.json</code> on the classroom's host.</p>
<table><tr><th>Assignment</th><th>Progress</th><th>Autograde</th><th>Feedback</th><th>Deadline</th></tr>
{rows}</table></body></html>"""


def make_group(hub_api: str, token: str, group: str):
    """An async function returning a hub group's members, cached for 30 s."""
    cache: dict[str, Any] = {"at": 0.0, "members": set()}

    async def members() -> set[str]:
        if time.monotonic() - cache["at"] > 30:
            response = await AsyncHTTPClient().fetch(HTTPRequest(
                url_path_join(hub_api, "groups", group), headers={"Authorization": f"token {token}"}))
            cache["members"] = set(json.loads(response.body)["users"])
            cache["at"] = time.monotonic()
        return cache["members"]

    return members


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The classroom's grading service (a JupyterHub service).")
    parser.add_argument("--root", default="/srv/course", help="the course volume")
    parser.add_argument("--course-id", required=True)
    parser.add_argument("--image", required=True, help="the image sandboxes run from (the CPU image)")
    parser.add_argument("--deployment", default="classroom")
    parser.add_argument("--workers", type=int, default=0, help="parallel gradings; 0: one per core, memory permitting")
    parser.add_argument("--memory", default="1g", help="memory of each sandbox")
    parser.add_argument("--cpus", type=float, default=1.0)
    parser.add_argument("--pids", type=int, default=256)
    parser.add_argument("--timeout", type=int, default=300, help="seconds for one notebook")
    parser.add_argument("--cell-timeout", type=int, default=120)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--formgrader-url", default="/services/formgrader/formgrader")
    parser.add_argument("--term", default="", help="part of every student's identity (grading.term)")
    parser.add_argument("--engine", action="append", default=[],
                        help="a swarm node's engine for sandboxes, tcp://HOST:2376 (repeat; none: this host's)")
    parser.add_argument("--engine-tls", default="/srv/engines-tls",
                        help="folder of the client certificate for --engine: ca.pem, cert.pem, key.pem")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    store = Store(Path(args.root), args.course_id)
    store.ensure()
    options = {"image": args.image, "deployment": args.deployment, "memory": args.memory, "cpus": args.cpus,
               "pids": args.pids, "timeout": args.timeout, "cell_timeout": args.cell_timeout, "term": args.term,
               # Secrets come in the environment, never on a command line that `ps` shows.
               "identity_secret": os.environ.get("CLASSROOM_IDENTITY_SECRET", ""),
               "artifact_secret": os.environ.get("CLASSROOM_ARTIFACT_SECRET", "")}
    engines = [sandbox.Engine(url, args.engine_tls) for url in args.engine]
    slots = engine_slots(engines, args.memory) if engines else []
    workers = args.workers or len(slots) or default_workers(args.memory)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/grading/")
    use_system_resolver()  # the hub, found at once when its container is replaced
    hub_auth = HubOAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    grader = Grader(store, options, workers, slots)
    removed = grader.remove_sandboxes()  # none can be in use before the workers start
    if removed:
        log.info("removed %d sandbox container(s) left from before", removed)
    api = r"api/assignments/([^/]+)"
    app = web.Application([
        (prefix, PageHandler),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        (url_path_join(prefix, "api/assignments"), AssignmentsHandler),
        (url_path_join(prefix, api, "release.tar.gz"), ReleaseHandler),
        (url_path_join(prefix, api, "submissions"), SubmitHandler),
        (url_path_join(prefix, api, "feedback.tar.gz"), FeedbackHandler),
        (url_path_join(prefix, api, "settings"), SettingsHandler),
        (url_path_join(prefix, api, "regrade"), RegradeHandler),
        (url_path_join(prefix, api, r"artifacts/([^/]+)\.json"), ArtifactHandler),
        (url_path_join(prefix, "api/progress"), ProgressHandler),
        (url_path_join(prefix, "api/grades.csv"), ExportHandler),
    ], hub_auth=hub_auth, store=store, grader=grader, prefix=prefix, formgrader_url=args.formgrader_url,
        instructors=make_group(hub_auth.api_url, hub_auth.api_token, "instructors"),
        public_key=integrity.public_key(options["artifact_secret"]) if options["artifact_secret"] else "",
        cookie_secret=os.urandom(32))
    app.listen(args.port, max_body_size=LIMITS.max_upload + 1024 * 1024)
    grader.start(students=make_group(hub_auth.api_url, hub_auth.api_token, "students"))
    log.info("grading %s from %s with %d worker(s), sandboxes from %s on %s", store.course_id, store.root,
             workers, args.image, ", ".join(args.engine) or "this host's engine")
    IOLoop.current().start()


if __name__ == "__main__":
    main()
