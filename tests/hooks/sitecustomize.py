"""Test-only hooks, imported by every Python the tests start (``PYTHONPATH=tests/hooks``,
see tests/engine_helpers.py): they stretch a phase so a test can signal inside it. The
product has no such hooks; without the variables below this file does nothing.

- ``LOON_TEST_DELAY_STARTING=s``: the container is started ``s`` seconds late (inside
  ``up``'s cancellable start phase).
- ``LOON_TEST_DELAY_ATTACH=s``: the background logger waits ``s`` seconds before it
  follows (a signal lands in the middle of a hand-over).
- ``LOON_TEST_DELAY_LOGGER_BOOT=s``: the background logger sleeps ``s`` seconds before
  Python runs any of its code, so a TERM in that window ends it at once, as one landing
  before its signal handlers exist does.
- ``LOON_TEST_PARTIAL_DELAY=s``: the background logger holds a partial last line ``s``
  seconds (not 0.25) before writing it without its newline, so a kill lands inside that
  window on a loaded machine.
- ``LOON_TEST_PIPE_IDLE=s``: a config pipe that sends nothing ends the read after ``s``
  seconds, not 10 (tests/test_input_second_pass.py's FIFO without a writer).
"""

import os
import sys

_START = os.environ.get("LOON_TEST_DELAY_STARTING")
_ATTACH = os.environ.get("LOON_TEST_DELAY_ATTACH")
_BOOT = os.environ.get("LOON_TEST_DELAY_LOGGER_BOOT")
_PARTIAL = os.environ.get("LOON_TEST_PARTIAL_DELAY")
_PIPE_IDLE = os.environ.get("LOON_TEST_PIPE_IDLE")

if _PIPE_IDLE:
    from loon_supervisor import bounded

    bounded.PIPE_IDLE = float(_PIPE_IDLE)

if _BOOT and "_logger" in sys.argv:
    import time

    time.sleep(float(_BOOT))

if _PARTIAL and "_logger" in sys.argv:
    from loon_supervisor.streams import stream_copy

    stream_copy.PARTIAL_DELAY = float(_PARTIAL)

if _START or (_ATTACH and "_logger" in sys.argv):
    import anyio

    from loon_supervisor.lifecycle import deployment

    if _START:
        _start = deployment.Deployment.start

        async def _late_start(self, spec):  # type: ignore[no-untyped-def]
            await anyio.sleep(float(_START or 0))
            return await _start(self, spec)

        deployment.Deployment.start = _late_start  # type: ignore[method-assign]

    if _ATTACH and "_logger" in sys.argv:
        _follow = deployment.Deployment.follow

        async def _late_follow(self, **kwargs):  # type: ignore[no-untyped-def]
            await anyio.sleep(float(_ATTACH or 0))
            return await _follow(self, **kwargs)

        deployment.Deployment.follow = _late_follow  # type: ignore[method-assign]
