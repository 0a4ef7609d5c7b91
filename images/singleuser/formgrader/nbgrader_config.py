# nbgrader in the formgrader service (instructors): the course folder and the
# exchange live on the course volume. Autograding is the grading service's job:
# student code never runs here, next to the gradebook.
import os
from pathlib import Path

from classroom_grading.autograde import FEEDBACK_PREPROCESSORS
from classroom_grading.formgrader import refuse_local_autograde
from classroom_grading.gradebook import gradebook_url

c = get_config()  # noqa: F821
course_id = os.environ["CLASSROOM_COURSE_ID"]
c.CourseDirectory.course_id = course_id
c.CourseDirectory.root = f"/srv/course/{course_id}"
c.CourseDirectory.db_url = gradebook_url(Path(c.CourseDirectory.root))
c.CourseExchange.course_root = "/srv/course"
c.ExchangeFactory.list = "classroom_grading.exchange.CourseList"
c.ExchangeFactory.release_assignment = "classroom_grading.exchange.CourseReleaseAssignment"
c.ExchangeFactory.collect = "classroom_grading.exchange.CourseCollect"
c.ExchangeFactory.release_feedback = "classroom_grading.exchange.CourseReleaseFeedback"
# The Autograde button answers with where autograding happens, touching nothing;
# `nbgrader autograde` typed in a terminal here still refuses, in its pipeline.
refuse_local_autograde()
c.Autograde.autograde_preprocessors = ["classroom_grading.autograde.RefuseLocalExecution"]
# Feedback generated here is the same as the grading service's: no hidden tests, and
# no output of the grading run where hidden tests were in the notebook.
c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
# Every page rendered from a student's notebook (the grading view, feedback) goes
# through nbconvert's allow-list sanitizer, on top of the grading service's own
# cleaning of the graded notebook: student markup never runs script here.
c.HTMLExporter.sanitize_html = True
