"""Each message once: the copies of one group message that every account of a scene receives."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

CAP = 200_000  # keys remembered at most (about 100 bytes each): a burst of groups cannot grow it further


class Once:
    """Remembers keys for `ttl` seconds; the first sighting of a key is the one to handle.

    In this process: one bot process holds every OneBot connection (each account's reverse
    WebSocket ends at the same nonebot server), so all copies of a message arrive here within
    moments of each other; the journal covers redelivery across restarts.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, cap: int = CAP):
        self.ttl = ttl
        self.clock = clock
        self.cap = cap
        self._until: OrderedDict[str, float] = OrderedDict()

    def first(self, key: str, *alike: str) -> bool:
        """True the first time `key` (or any of `alike`, the names its copies may carry) is seen within
        the ttl; False for a copy."""
        now = self.clock()
        while self._until and (next(iter(self._until.values())) <= now or len(self._until) >= self.cap):
            self._until.popitem(last=False)
        if key in self._until or any(k in self._until for k in alike):
            return False
        self._until[key] = now + self.ttl
        return True

    def __len__(self) -> int:
        return len(self._until)
