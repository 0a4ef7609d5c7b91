# Students' servers and the formgrader reach the hub by name: look it up afresh each time, so
# that a hub whose container was replaced is found at once (classroom_grading/resolver.py).
from classroom_grading.resolver import use_system_resolver

use_system_resolver()
