"""Making sure the connection caps fit the process's descriptor limit (``RLIMIT_NOFILE``).

Every open connection is a descriptor, and a deploy needs a few of its own (its log, its
status file, its child's pipes). When the caps plus that reserve do not fit, ``accept``
fails (asyncio then logs a traceback per queued connection) and a deploy cannot open its
log. At start-up the soft limit is raised towards the hard one; when even that is too low,
``--max-connections`` is lowered with a sentence saying so, or the server refuses to start.
"""

from __future__ import annotations

import resource
from dataclasses import replace

from loon_supervisor.deploy.options import ServerOptions
from loon_supervisor.errors import Problem

# The server's own descriptors: std streams, the event loop (epoll, self-pipe), listening
# sockets, a deploy's log, status and delivery files, its child's pipes, and one more for
# a connection that is accepted only to be closed. Measured use is about 20.
RESERVE = 32


def fit_descriptors(opts: ServerOptions, warnings: list[str], problems: list[Problem]
                    ) -> ServerOptions:
    """``opts`` with caps that fit the descriptor limit (raising the soft limit if it may)."""
    needed = opts.max_connections + RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return opts
    room = soft - RESERVE
    if room < 1:
        problems.append(Problem("descriptor limit", f"is {soft} (ulimit -n); the deploy server "
                                f"needs at least {RESERVE + 1} ({RESERVE} for itself and one "
                                "per connection)", "raise it, e.g. LimitNOFILE=4096 in the "
                                "systemd unit or `ulimit -n 4096` before starting"))
        return opts
    warnings.append(f"the descriptor limit is {soft} (ulimit -n), too low for "
                    f"--max-connections {opts.max_connections} plus the server's own "
                    f"{RESERVE}: at most {room} connections are accepted; raise the limit "
                    f"(LimitNOFILE= in the unit) to allow more")
    return replace(opts, max_connections=room,
                   max_connections_per_client=min(opts.max_connections_per_client, room))
