"""How pytest-xdist deals the tests out: one at a time in our order, the waiting ones to one worker.

Most tests keep a core busy. A few mostly wait: on real child processes (two
``touchflow worker``s, a slow SMTP sink, a redis-server stopped and started)
and on leases running out. Run side by side on every worker at the start, as
the "longest first" order used to do, they left both cores of a 2-core machine
idle for a minute and a half. ``Scheduling`` hands them, as one unit, to a
single worker that runs them one after another, while the other workers keep
the cores busy; ``auto_workers`` starts one worker more than there are cores
for that one, which spends most of its time waiting.

Why not xdist's ``xdist_group`` mark: xdist groups by renaming the item
(``item._nodeid``), which pytest 9 no longer reads, so the mark silently did
nothing. The controller sees each test's path, and that is what this groups by.
"""

from __future__ import annotations

import os

from xdist.scheduler import LoadScopeScheduling

# Test files whose tests mostly wait on child processes, SMTP delays and leases
# (the pytest process uses a few percent of a core for them, the children not much more).
WAITING = (
    "tests/runtime/delivery/test_worker_faults.py",
    "tests/runtime/delivery/test_crash.py",
)
WAITING_UNIT = "waiting on child processes"

# Tests whose runs on the two databases share work a process does once (the schema fuzz
# draws its cases once and sends them to each database): each is dealt, with every one of
# its parameters, to one worker.
SHARED = (
    "tests/backend/web/test_schema_fuzz.py"
    "::test_generated_requests_get_no_server_error_and_match_the_schema",
)


class Scheduling(LoadScopeScheduling):
    """xdist's load scheduling, one test per unit, except the waiting tests (one unit)
    and each ``SHARED`` test (one unit with all its parameters).

    Units are dealt largest first (xdist's ``--loadscope-reorder``, on by default),
    so the waiting unit starts at once on one worker; the others follow the
    collection order (tests/conftest.py sorts it).
    """

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.split("::", 1)[0] in WAITING:
            return WAITING_UNIT
        test = nodeid.split("[", 1)[0]
        return test if test in SHARED else nodeid


def auto_workers() -> int:
    """One worker per core, and one more for the waiting tests (see the module docstring)."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if chosen:
        return int(chosen)
    return len(os.sched_getaffinity(0)) + 1
