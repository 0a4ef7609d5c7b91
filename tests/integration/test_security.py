"""Students are attackers: each attack an ordinary student can try, as a test.

- A submission full of script (markdown, outputs made at grading time, outputs under
  test cells, attachments, metadata) is opened by the instructor in a real Chromium,
  logged in through the login form, on every staff page that shows it; no vector may
  run script with a real origin (each would fetch `/xss-<id>` on the page's origin).
- A page that a student serves from their own server shares no origin with the hub
  or the services: opened by the instructor, it can read nothing and mint nothing.
- Hidden tests never reach a student: not by reading the notebook on disk inside
  the sandbox, not by a hook that prints each cell's source.
- Uploads over the limits, too fast, or with dangerous names are refused with the
  limit named; a new submission without its test cells scores 0, not the old grade;
  a result forged by the kernel on the sandbox's standard output is not accepted.
"""
from __future__ import annotations

import base64
import concurrent.futures
import html
import json
import re

import nbformat
import pytest
import requests

from . import assignment as lab
from .fixtures import ARTIFACTS, Person, docker, wait_for
from .test_assignments import (A, COURSE, formgrader, gradebook, grading_url, progress, released, student_action,
                               submit_direct, tar_of, teacher, wait_graded)

pytestmark = pytest.mark.usefixtures("explain")
__all__ = ["released", "teacher"]  # fixtures shared with test_assignments

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def js(vector: str) -> str:
    """Script that proves it ran with a real origin: it fetches /xss-<vector> there.
    Written without quotes, so that it fits in any attribute or string."""
    return f"self.origin!=`null`&&fetch(`/xss-{vector}`)"


def img(vector: str) -> str:
    return f'<img src=x onerror="{js(vector)}">'


MARKDOWN_VECTORS = {
    "md-img-onerror": img("md-img-onerror"),
    "md-script": f"<script>{js('md-script')}</script>",
    "md-svg-onload": f'<svg onload="{js("md-svg-onload")}"></svg>',
    "md-iframe-srcdoc": f"<iframe srcdoc='{img('md-iframe-srcdoc')}'></iframe>",
    "md-details-ontoggle": f'<details open ontoggle="{js("md-details-ontoggle")}"><summary>s</summary></details>',
    "md-input-autofocus": f'<input autofocus onfocus="{js("md-input-autofocus")}">',
    "md-math-mxss": f'<math><mtext><table><mglyph><style><img src=x onerror="{js("md-math-mxss")}">',
    "md-attachment-svg": "![a](attachment:a.svg) <img src='attachment:a.svg'>",
}

GRADING_TIME_OUTPUTS = f'''
import os
from IPython.display import HTML, SVG, Javascript, Markdown, display
if os.environ.get("NBGRADER_EXECUTION"):
    display(HTML({img("out-html")!r}))
    display(Javascript({js("out-javascript")!r}))
    display(Markdown({img("out-markdown")!r}))
    display(SVG({'<svg xmlns="http://www.w3.org/2000/svg" onload="' + js("out-svg") + '"></svg>'!r}))
    display({{"text/html": {img("out-isolated")!r}, "text/plain": "x"}},
            metadata={{"text/html": {{"isolated": True}}}}, raw=True)
    display(HTML({('<iframe src="javascript:' + js("out-iframe-js") + '"></iframe>')!r}))
    # Under every later cell, the test cells included, while it is graded.
    get_ipython().events.register(
        "post_run_cell", lambda *a: display(HTML({img("out-under-test-cells")!r})))

    class _Shown:
        def _repr_html_(self):
            return {img("out-execute-result")!r}
    _shown = _Shown()
else:
    _shown = None
_shown
'''

VECTORS = sorted([*MARKDOWN_VECTORS, "out-html", "out-javascript", "out-markdown", "out-svg", "out-isolated",
                  "out-iframe-js", "out-under-test-cells", "out-execute-result", "meta-tags",
                  "meta-notebook-title", "meta-widgets", "raw-html", "submitted-output"])


def xss_notebook() -> nbformat.NotebookNode:
    """A correct submission of lab-small that carries every vector."""
    answers = lab.correct_answers()
    answers["relu"] = answers["relu"] + "\n" + GRADING_TIME_OUTPUTS
    nb = lab.student_notebook(answers)
    nb.metadata["title"] = f"</title><script>{js('meta-notebook-title')}</script>"
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0, "x": f"</script><script>{js('meta-widgets')}</script>"}}
    extra = []
    for vector, text in MARKDOWN_VECTORS.items():
        cell = nbformat.v4.new_markdown_cell(f"{vector}: {text}")
        if vector == "md-attachment-svg":
            svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{js(vector)}"><script>{js(vector)}</script></svg>'
            cell.attachments = {"a.svg": {"image/svg+xml": base64.b64encode(svg.encode()).decode()}}
        extra.append(cell)
    fake = nbformat.v4.new_code_cell("print('metadata')", metadata={"tags": [f'x" onmouseover="{js("meta-tags")}']})
    raw = nbformat.v4.new_raw_cell(img("raw-html"), metadata={"raw_mimetype": "text/html"})
    ran = nbformat.v4.new_code_cell("shown")
    ran.outputs = [nbformat.v4.new_output("display_data", data={"text/html": img("submitted-output"),
                                                                 "text/plain": "shown"})]
    nb.cells[1:1] = [*extra, fake, raw, ran]
    return nb


def logged_in_browser(playwright, deployment, who: str):
    """Chromium, logged in through the hub's login form; every request any page makes is kept."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    seen: list[str] = []
    context.on("request", lambda request: seen.append(request.url))
    page = context.new_page()
    page.goto(f"{deployment.url}/hub/login")
    page.fill("#username_input", who)
    page.fill("#password_input", deployment.passwords[who])
    page.click("#login_submit")
    page.wait_for_load_state("networkidle", timeout=300_000)
    return browser, page, seen


def fired(seen: list[str]) -> set[str]:
    return {m.group(1) for url in seen if (m := re.search(r"/xss-([a-z0-9-]+)", url))}


@pytest.fixture(scope="module")
def xss_submission(deployment, teacher, released):
    """eve1 submits the notebook of vectors; it is graded (full marks: the answers are right)."""
    eve = Person(deployment, "eve1")
    eve.login()
    eve.create_token()
    response = submit_direct(deployment, eve, tar_of(xss_notebook()))
    assert response.status_code == 201, response.text
    job = wait_graded(deployment, teacher, "eve1")
    assert job["status"] == "done" and job["score"] == lab.TOTAL_POINTS, job
    return eve


def test_no_submitted_script_runs_on_any_staff_page(deployment, teacher, xss_submission):
    """The instructor opens every staff page that shows eve1's submission: the formgrader's
    grading view and its lists, the gradebook, feedback, the grading page, the hub's admin
    page and the formgrader's JupyterLab. No vector may run; a control script does."""
    from playwright.sync_api import sync_playwright

    listed = formgrader(deployment, teacher, "GET", f"formgrader/api/submitted_notebooks/{A}/{lab.NOTEBOOK}").json()
    submission_id = next(s["id"] for s in listed if s["student"] == "eve1")
    feedback_html = docker("exec", f"{deployment.name}-grading", "cat",
                           f"/srv/course/{COURSE}/feedback/eve1/{A}/{lab.NOTEBOOK}.html")
    fg = f"{deployment.service_url('formgrader')}"
    pages = {
        "grading view": f"{fg}/formgrader/submissions/{submission_id}/",
        "submissions": f"{fg}/formgrader/manage_submissions/{A}",
        "gradebook": f"{fg}/formgrader/gradebook/{A}/{lab.NOTEBOOK}",
        "student": f"{fg}/formgrader/manage_students/eve1/{A}",
        "grading page": f"{deployment.service_url('grading')}/",
        "hub admin": f"{deployment.url}/hub/admin",
        "formgrader lab": f"{fg}/lab/tree/{COURSE}/autograded/eve1/{A}/{lab.NOTEBOOK}.ipynb",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser, page, seen = logged_in_browser(playwright, deployment, "teacher")
        try:
            for name, url in pages.items():
                response = page.goto(url, timeout=120_000)
                assert response is not None and response.status == 200, f"{name}: {url} answered {response}"
                if name == "formgrader lab":
                    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
                page.wait_for_timeout(3000)
                page.screenshot(path=str(ARTIFACTS / f"xss-{name.replace(' ', '-')}.png"))
            # Feedback as a page of a staff origin (what it would do if it were served there).
            page.goto(pages["grading view"])
            page.set_content(feedback_html)
            page.wait_for_timeout(3000)
            # Control: script that does run is seen, so a silent page means nothing ran.
            page.evaluate(f"() => {{ {js('control')}; return 0; }}")  # its fetch may fail; it was sent
            page.wait_for_timeout(1000)
        finally:
            browser.close()
    ran = fired(seen)
    assert "control" in ran, "the control script was not seen: the test cannot see vectors"
    assert ran == {"control"}, f"submitted script ran on a staff page: {sorted(ran - {'control'})}"
    handlers = re.findall(r"<[a-z][^>]*\son[a-z]+\s*=", feedback_html, flags=re.I)
    assert not handlers, f"the feedback keeps event handlers: {handlers[:3]}"


def api_tokens_of(deployment, person: Person) -> set[str]:
    """The person's API tokens (not the OAuth tokens their own logins give their server)."""
    response = requests.get(f"{deployment.url}/hub/api/users/{person.name}/tokens",
                            headers={"Authorization": f"token {person.token}"}, timeout=60)
    response.raise_for_status()
    return {t["id"] for t in response.json()["api_tokens"] if not t.get("oauth_client")}


def test_a_students_page_reaches_neither_the_hub_nor_the_services(deployment, teacher):
    """eve2 serves a page of her own without login (a JupyterLab extension folder in her home).
    The instructor opens it while logged in: it is on eve2's origin, and it can neither read
    hub pages, nor mint a token, nor reach the grading service or the formgrader."""
    from playwright.sync_api import sync_playwright

    eve = Person(deployment, "eve2").start_session()
    hub, grading, fg = deployment.url, deployment.service_url("grading"), deployment.service_url("formgrader")
    script = f"""
const results = {{}};
async function attempt(name, run) {{
  try {{ results[name] = String(await run()).slice(0, 200); }} catch (e) {{ results[name] = 'blocked'; }}
}}
(async () => {{
  await attempt('hub page', async () => {{
    const r = await fetch('{hub}/hub/home', {{credentials: 'include'}}); const t = await r.text();
    return t.includes('teacher') ? 'READ' : 'no'; }});
  await attempt('hub api', async () => {{
    const r = await fetch('{hub}/hub/api/user', {{credentials: 'include'}}); return r.ok ? 'READ' : 'no'; }});
  await attempt('mint token', async () => {{
    const r = await fetch('{hub}/hub/api/users/teacher/tokens', {{method: 'POST', credentials: 'include',
      headers: {{'Content-Type': 'text/plain'}}, body: JSON.stringify({{note: 'stolen'}})}});
    return r.ok ? 'MINTED' : 'no'; }});
  await attempt('mint token (form)', async () => {{
    const f = document.createElement('iframe'); f.name = 'sink'; document.body.appendChild(f);
    const form = document.createElement('form'); form.method = 'POST'; form.target = 'sink';
    form.action = '{hub}/hub/api/users/teacher/tokens'; document.body.appendChild(form); form.submit();
    await new Promise(r => setTimeout(r, 2000)); return 'sent'; }});
  await attempt('grading api', async () => {{
    const r = await fetch('{grading}/api/progress', {{credentials: 'include'}}); await r.text(); return 'READ'; }});
  await attempt('formgrader api', async () => {{
    const r = await fetch('{fg}/formgrader/api/assignments', {{credentials: 'include'}}); await r.text();
    return 'READ'; }});
  await attempt('origin', async () => self.origin);
  document.title = 'done';
  window.results = results;
}})();
"""
    eve.run(f"""
import pathlib
folder = pathlib.Path.home() / ".local/share/jupyter/labextensions/evil/static"
folder.mkdir(parents=True, exist_ok=True)
(folder / "page.html").write_text({('<!doctype html><body><script>' + script + '</script></body>')!r})
""")
    tokens_before = api_tokens_of(deployment, teacher)
    url = f"{deployment.user_url('eve2')}/lab/extensions/evil/static/page.html"
    with sync_playwright() as playwright:
        browser, page, _ = logged_in_browser(playwright, deployment, "teacher")
        try:
            response = page.goto(url, timeout=120_000)
            assert response is not None and response.status == 200, f"the student's page was not served: {response}"
            page.wait_for_function("document.title === 'done'", timeout=60_000)
            results = page.evaluate("window.results")
        finally:
            browser.close()
    assert results["origin"] == deployment.origin("eve2"), results
    assert results["hub page"] == "blocked" and results["hub api"] == "blocked", results
    assert results["mint token"] in ("blocked", "no"), results
    assert results["grading api"] == "blocked" and results["formgrader api"] == "blocked", results
    assert api_tokens_of(deployment, teacher) == tokens_before, "a token was minted for the instructor"


LEAK_ANSWER = '''
import base64, glob, json, os
import torch

def relu(x):
    return torch.clamp(x, min=0.0)

print("SUBMITTED-OUTPUT-OF-EVE3")
if os.environ.get("NBGRADER_EXECUTION"):
    # Route 1: the notebook being graded, read from disk (its hidden tests restored).
    for path in glob.glob("**/*.ipynb", recursive=True):
        text = open(path).read()
        print("LEAK" + "DISK", text, base64.b64encode(text.encode()).decode()[::-1])
    # Route 2: every cell's source, printed into that cell's own output.
    get_ipython().events.register(
        "pre_run_cell", lambda info: print("LEAK" + "SRC", info.raw_cell, info.raw_cell[::-1]))
'''


def hidden_lines() -> list[str]:
    """Every line of the source's hidden test regions (what a student must never see)."""
    lines, inside = [], False
    for cell in lab.source_notebook().cells:
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                inside = "BEGIN" in line
            elif inside and len(line.strip()) > 8:
                lines.append(line.strip())
    assert lines
    return lines


def test_hidden_tests_never_reach_the_students_feedback(deployment, teacher, released):
    """eve3 prints the graded notebook from disk and each cell's source (plain and encoded):
    her feedback shows what she submitted and the grader's verdicts, none of it."""
    eve = Person(deployment, "eve3").start_session()
    student_action(eve, "fetch")
    answers = lab.correct_answers()
    answers["relu"] = LEAK_ANSWER.strip()
    notebook = lab.student_notebook(answers)
    notebook.cells[[c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells].index("relu")].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="SUBMITTED-OUTPUT-OF-EVE3\n")]
    saved = eve.server_api("PUT", f"/contents/{A}/{lab.NOTEBOOK}.ipynb",
                           json={"type": "notebook", "format": "json", "content": notebook})
    assert saved.status_code == 200, saved.text
    assert student_action(eve, "submit")["success"]
    job = wait_graded(deployment, teacher, "eve3")
    assert job["status"] == "done" and job["score"] == lab.TOTAL_POINTS, job
    # The instructor's copy shows the grading run (the leak attempt is visible to staff).
    graded = docker("exec", f"{deployment.name}-grading", "cat",
                    f"/srv/course/{COURSE}/autograded/eve3/{A}/{lab.NOTEBOOK}.ipynb")
    assert "LEAKDISK" in graded and "LEAKSRC" in graded, "the attack did not run: the test proves nothing"
    student_action(eve, "fetch_feedback")
    stamps = sorted(e["name"] for e in eve.server_api("GET", f"/contents/{A}/feedback").json()["content"])
    page = eve.server_api("GET", f"/contents/{A}/feedback/{stamps[-1]}/{lab.NOTEBOOK}.html").json()["content"]
    text = html.unescape(re.sub(r"<[^>]+>", "", page))  # what a reader sees, highlighting and escapes undone
    for secret in ["BEGIN HIDDEN TESTS", "LEAKDISK", "LEAKSRC", "relu of random 4x7", *hidden_lines()]:
        assert secret not in text, f"eve3's feedback shows {secret!r}"
    assert "SUBMITTED-OUTPUT-OF-EVE3" in text, "feedback lost the outputs eve3 submitted"
    listing = requests.get(grading_url(deployment, "api/assignments"),
                           headers={"Authorization": f"token {eve.token}"}, timeout=60).text
    assert "relu of random" not in listing and "HIDDEN" not in listing


def test_a_new_submission_without_its_test_cells_scores_zero_not_the_old_grade(deployment, teacher, released):
    eve = Person(deployment, "eve4")
    eve.login()
    eve.create_token()
    assert submit_direct(deployment, eve, tar_of(lab.student_notebook(lab.correct_answers()))).status_code == 201
    assert wait_graded(deployment, teacher, "eve4")["score"] == lab.TOTAL_POINTS
    stripped = lab.student_notebook(lab.correct_answers())
    stripped.cells = [c for c in stripped.cells if not (c.metadata.get("nbgrader", {}).get("grade")
                                                         and c.cell_type == "code")]
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    stamp = submit_direct(deployment, eve, tar_of(stripped)).json()["timestamp"]
    job = wait_for(lambda: next((s for s in progress(deployment, teacher)[A]["submissions"]
                                 if s["student"] == "eve4" and s["timestamp"] == stamp
                                 and s["status"] in ("done", "failed")), None), 300, "eve4's second grading")
    assert job.get("score") in (0, None), job
    assert gradebook(deployment).get("eve4", 0) == 0


def test_a_result_forged_by_the_kernel_is_not_the_graders(deployment, teacher, released):
    """eve5's code writes a finished-looking notebook to the container's standard output
    (through PID 1's open file): the service takes only the harness's sealed result."""
    forged = json.dumps({"cells": [], "metadata": {"classroom_sandbox": {"status": "completed"}},
                         "nbformat": 4, "nbformat_minor": 5})
    answers = dict(lab.correct_answers())
    answers["relu"] = answers["relu"] + f"""
import os
if os.environ.get("NBGRADER_EXECUTION"):
    with open("/proc/1/fd/1", "w") as out:
        out.write({forged!r})
"""
    eve = Person(deployment, "eve5")
    eve.login()
    eve.create_token()
    assert submit_direct(deployment, eve, tar_of(lab.student_notebook(answers))).status_code == 201
    job = wait_graded(deployment, teacher, "eve5")
    runs = job.get("sandbox") or []
    assert job.get("score") in (0, None), job
    assert runs and runs[0]["status"] == "failed" and "not the harness's own" in runs[0]["detail"], job


def bomb(entries) -> bytes:
    """A correct submission of lab-small, plus `entries` (see `assignment.archive`)."""
    notebook = nbformat.writes(lab.student_notebook(lab.correct_answers())).encode()
    return lab.archive([(f"{lab.NOTEBOOK}.ipynb", notebook), *entries])


def test_uploads_over_the_limits_are_refused_with_the_limit_named(deployment, released):
    eve = Person(deployment, "eve6")
    eve.login()
    eve.create_token()
    cases = [
        (bomb([("zeros.bin", 48 * 2**20)]), 413, "unpacks to more than"),
        (bomb([(f"d{i}", None) for i in range(50_000)]), 413, "more than 500 files and folders"),
        (bomb([("/".join("abcdefgh") + "/x.txt", 1)]), 400, "levels deep"),
        (bomb([('"><img src=x onerror=alert(1)>.ipynb', 10)]), 400, "rename it"),
        (bomb([("evil.html", 10)]), 400, "cannot be submitted"),
        (bomb([("drawing.svg", 10)]), 400, "cannot be submitted"),
    ]
    for payload, status, message in cases:
        assert len(payload) < 1_000_000
        response = submit_direct(deployment, eve, payload)
        assert response.status_code == status and message in response.json()["error"], response.text
    assert not docker("exec", f"{deployment.name}-grading", "sh", "-c",
                      f"ls -A /srv/course/exchange/inbound/eve6/{A} 2>/dev/null || true")
    bad_name = requests.get(grading_url(deployment, "api/assignments/..%2Falice/feedback.tar.gz"),
                            headers={"Authorization": f"token {eve.token}"}, timeout=60)
    assert bad_name.status_code == 400 and "not a valid name" in bad_name.json()["error"], bad_name.text


def test_a_student_submitting_too_fast_is_told_to_wait_and_others_are_served(deployment, released):
    """eve7 floods submissions from several threads; past the rate limit she gets 429,
    and alice's listing is answered meanwhile."""
    eve, alice = Person(deployment, "eve7"), Person(deployment, "alice")
    for person in (eve, alice):
        person.login()
        person.create_token()
    payload = tar_of(lab.student_notebook(lab.blank_answers()))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        flood = [pool.submit(submit_direct, deployment, eve, payload) for _ in range(10)]
        listing = requests.get(grading_url(deployment, "api/assignments"),
                               headers={"Authorization": f"token {alice.token}"}, timeout=60)
        codes = [f.result().status_code for f in flood]
    assert listing.status_code == 200
    assert codes.count(201) == 6 and codes.count(429) == 4, codes
    refused = next(f.result() for f in flood if f.result().status_code == 429)
    assert "in the last minute" in refused.json()["error"]
