"""The long-running processes collect garbage less often and never scan their start-up objects."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_tuning_raises_the_young_threshold_and_freezes_what_exists() -> None:
    # In a fresh interpreter: the settings are process-wide and pytest's must stay as they are.
    script = textwrap.dedent(
        """
        import gc
        from qualflow.gc_tuning import YOUNG_GENERATION_THRESHOLD, tune_for_long_running_process
        class Cycle:
            pass
        garbage = Cycle()
        garbage.itself = garbage
        import weakref
        left = weakref.ref(garbage)
        del garbage
        before = gc.get_threshold()
        tune_for_long_running_process()
        assert left() is None, "start-up garbage was frozen instead of freed"
        after = gc.get_threshold()
        assert after == (YOUNG_GENERATION_THRESHOLD, before[1], before[2]), (before, after)
        assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
