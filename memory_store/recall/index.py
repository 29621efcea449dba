"""The recall index: per user, in memory only, what ranking needs of each memory version
(its length, its bag of terms, its vector), so that a question costs no decryption of
memories it does not answer. Bounded: the least recently used users are dropped past
`max_users`. It is derived personal data: it is dropped for a user when one of their
memories is forgotten (their data key is re-issued: the stamp changes), when their consent
changes, and for everyone when the keys rotate. Nothing of it is written anywhere."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from memory_store.recall.embedders import Matrix


@dataclass(slots=True)
class Entry:
    version: int
    length: int  # characters of content
    bag: Counter[str]
    vector: Matrix | None  # unit length; None until the indexer has made it


@dataclass
class UserIndex:
    stamp: object  # what the entries were opened under (the data key's id and issue)
    entries: dict[str, Entry] = field(default_factory=dict)
    # The last vectors stacked into one matrix, with the (id, version)s of its rows: a
    # user's next question is most often asked of the same memories, and stacking 1,000
    # vectors costs more than the product.
    _stacked: tuple[list[tuple[str, int]], Matrix] | None = None

    def current(self, memory_id: str, version: int) -> Entry | None:
        entry = self.entries.get(memory_id)
        return entry if entry is not None and entry.version == version else None

    def stacked(self, present: list[tuple[str, int]], vectors: Sequence[Matrix | None]) -> Matrix:
        """The vectors there are of `vectors` (those of `present`, in order), one per row."""
        last = self._stacked  # one read: another thread may replace it meanwhile
        if last is not None and last[0] == present:
            return last[1]
        matrix: Matrix = np.stack([vector for vector in vectors if vector is not None])
        self._stacked = (present, matrix)
        return matrix


class RecallIndex:
    def __init__(self, max_users: int) -> None:
        self._max_users = max_users
        self._users: OrderedDict[str, UserIndex] = OrderedDict()
        self._lock = threading.Lock()

    def for_user(self, user_id: str, stamp: object) -> tuple[UserIndex, bool]:
        """The user's index, and whether it was there (warm). One made under another stamp
        (the user's key re-issued since) is dropped and begun again."""
        with self._lock:
            found = self._users.get(user_id)
            if found is not None and found.stamp == stamp:
                self._users.move_to_end(user_id)
                return found, True
            fresh = self._users[user_id] = UserIndex(stamp)
            self._users.move_to_end(user_id)
            while len(self._users) > self._max_users:
                self._users.popitem(last=False)
            return fresh, False

    def add_vector(self, user_id: str, memory_id: str, version: int, vector: Matrix) -> None:
        """A vector the indexer just made, for a user whose index is warm."""
        with self._lock:
            found = self._users.get(user_id)
        entry = found.current(memory_id, version) if found is not None else None
        if entry is not None:
            entry.vector = vector

    def evict(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    def clear(self) -> None:
        with self._lock:
            self._users.clear()

    def __contains__(self, user_id: object) -> bool:
        with self._lock:
            return user_id in self._users

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)
