"""Start-up objects out of the garbage collector's way, once a service is built.

A service imports about a thousand modules: some 146,000 objects in the router that live as
long as the process. Every full collection walks them all (75 ms of CPU in the router, in
process): a pause that every response in flight waits out, on the tail of the end-to-end
latency. Moved to the permanent generation (`gc.freeze`) once the process is built, they are
left alone; a full collection walks what the work itself made (8 ms). Only the entry points
call this: tests build and drop apps in one process, and a cycle frozen while alive is never
collected.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then freeze the rest; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
