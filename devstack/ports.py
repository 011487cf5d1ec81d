"""Free loopback ports, so two stacks (or a stack and a stray process) never collide.

Two processes asking the kernel for a free port at the same moment can be handed the same one
(each binds it, closes it, and only then starts its server). Parallel test workers each start
a stack, so every port handed out is also recorded, under a lock, in a file all processes of
this machine share, and not handed out again for a while.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
import time
from pathlib import Path

#: How long a port handed out stays reserved for whoever asked (its server starts in that time).
RESERVED_SECONDS = 300.0
#: Per user: another user's registry in a shared /tmp would be a file we may not write
#: (fs.protected_regular refuses even root).
_REGISTRY = Path(tempfile.gettempdir()) / f"modeldeploy-ports-{os.getuid()}.json"
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that no process of this
    machine was handed in the last RESERVED_SECONDS."""
    with open(_REGISTRY.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        try:
            recent = {int(p): t for p, t in json.loads(_REGISTRY.read_text()).items()
                      if now - t < RESERVED_SECONDS}
        except (OSError, ValueError):
            recent = {}
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out and port not in recent:
                break
        _handed_out.add(port)
        recent[port] = now
        _REGISTRY.write_text(json.dumps(recent))
        return port
