# nbgrader in a student's server: the assignment list talks to the classroom's
# grading service as this person (their hub token), never to a shared folder.
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = os.environ.get("CLASSROOM_COURSE_ID", "")
c.ExchangeFactory.list = "classroom_grading.exchange.RemoteList"
c.ExchangeFactory.fetch_assignment = "classroom_grading.exchange.RemoteFetchAssignment"
c.ExchangeFactory.submit = "classroom_grading.exchange.RemoteSubmit"
c.ExchangeFactory.fetch_feedback = "classroom_grading.exchange.RemoteFetchFeedback"
