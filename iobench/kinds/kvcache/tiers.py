"""The two tiers above the GPU: an emulated host-RAM tier and the storage tier.

Both are LRU caches of chunk ids with a fixed number of slots; the RAM tier's slots are
real memory (one buffer of --cpu-cache bytes), the storage tier's are chunk files or slab
slots. A chunk being read or written is pinned and never evicted under the reader.
Policy: write-through (a computed chunk goes to RAM and, once admitted, to storage at
once, as LMCache's local-disk backend does); admission after K sightings of a chunk
(--admit-after, as Dynamo's frequency filter); promotion of a storage hit into RAM on read
(--promote). All decisions happen under one lock; the I/O happens outside it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


class LRU:
    """Ids -> slots, least recently used first; pinned ids are never evicted."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.map: OrderedDict[int, int] = OrderedDict()
        self.free = list(range(slots - 1, -1, -1))
        self.pins: dict[int, int] = {}
        self.evictions = 0

    def __contains__(self, uid: int) -> bool:
        return uid in self.map

    def touch(self, uid: int) -> int:
        self.map.move_to_end(uid)
        return self.map[uid]

    def pin(self, uid: int) -> None:
        self.pins[uid] = self.pins.get(uid, 0) + 1

    def unpin(self, uid: int) -> None:
        n = self.pins[uid] - 1
        if n:
            self.pins[uid] = n
        else:
            del self.pins[uid]

    def allocate(self) -> tuple[int, int | None] | None:
        """A free slot, evicting the least recently used unpinned id if need be:
        (slot, evicted id or None), or None when every slot is pinned."""
        if self.free:
            return self.free.pop(), None
        for uid in self.map:
            if uid not in self.pins:
                slot = self.map.pop(uid)
                self.evictions += 1
                return slot, uid
        return None

    def insert(self, uid: int, slot: int) -> None:
        self.map[uid] = slot
        self.map.move_to_end(uid)

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def drop(self, uid: int) -> int:
        slot = self.map.pop(uid)
        self.free.append(slot)
        return slot


@dataclass
class Step:
    """One chunk of a request's plan."""

    uid: int
    tier: str  # ram | storage (restore), write (computed: to RAM and/or storage)
    slot: int = -1  # storage slot (restore from storage, or write to storage)
    gen: int = 0
    ram_slot: int = -1  # RAM slot to copy from (ram) or to fill (promote, write)
    evicted: list[tuple[int, int]] = field(default_factory=list)  # storage (uid, gen) to drop


@dataclass
class Plan:
    restore: list[Step]
    write: list[Step]
    chunks: int  # full chunks of the input
    skipped_full: int = 0  # admitted chunks not written: every storage slot was pinned
    skipped_dup: int = 0  # chunks another request was writing already


class Tiers:
    def __init__(self, ram_slots: int, storage_slots: int, admit_after: int,
                 promote: bool) -> None:
        self.ram = LRU(ram_slots)
        self.sto = LRU(storage_slots)
        self.admit_after = admit_after
        self.promote = promote and ram_slots > 0
        self.lock = threading.Lock()
        self.uids: dict[Hashable, int] = {}
        self.seen: dict[int, int] = {}
        self.gens: dict[int, int] = {}
        self.pending: set[int] = set()  # being written to storage
        self.ram_pending: set[int] = set()  # being filled in RAM

    def uid(self, key: Hashable) -> int:
        u = self.uids.get(key)
        if u is None:
            u = self.uids[key] = len(self.uids)
        return u

    def _ram_slot(self) -> int:
        got = self.ram.allocate()
        return -1 if got is None else got[0]

    def plan(self, keys: list[Hashable]) -> Plan:
        """Look the request's chunks up in order: the stored prefix is restored (RAM first,
        then storage), every chunk after the first miss is computed and written."""
        with self.lock:
            uids = [self.uid(k) for k in keys]
            restore: list[Step] = []
            for u in uids:
                self.seen[u] = self.seen.get(u, 0) + 1
            i = 0
            for u in uids:
                if u in self.ram and u not in self.ram_pending:
                    self.ram.pin(u)
                    restore.append(Step(u, "ram", ram_slot=self.ram.touch(u)))
                elif u in self.sto and u not in self.pending:
                    self.sto.pin(u)
                    st = Step(u, "storage", slot=self.sto.touch(u), gen=self.gens[u])
                    if self.promote and u not in self.ram_pending:
                        st.ram_slot = self._ram_slot()
                        if st.ram_slot >= 0:
                            self.ram_pending.add(u)
                    restore.append(st)
                else:
                    break
                i += 1
            out = Plan(restore, [], len(uids))
            for u in uids[i:]:
                st = Step(u, "write")
                if self.ram.slots and u not in self.ram and u not in self.ram_pending:
                    st.ram_slot = self._ram_slot()
                    if st.ram_slot >= 0:
                        self.ram_pending.add(u)
                if self.seen[u] >= self.admit_after:
                    if u in self.pending:
                        out.skipped_dup += 1
                    elif u in self.sto:  # stored already (after a gap in the prefix)
                        self.sto.touch(u)
                    else:
                        got = self.sto.allocate()
                        if got is None:
                            out.skipped_full += 1
                        else:
                            st.slot = got[0]
                            if got[1] is not None:
                                st.evicted.append((got[1], self.gens[got[1]]))
                            st.gen = self.gens.get(u, 0) + 1
                            self.gens[u] = st.gen
                            self.pending.add(u)
                if st.slot >= 0 or st.ram_slot >= 0:
                    out.write.append(st)
            return out

    def restored(self, st: Step, ok: bool) -> None:
        """A restore step finished (ok: it was read and promoted where planned)."""
        with self.lock:
            if st.tier == "ram":
                self.ram.unpin(st.uid)
                return
            self.sto.unpin(st.uid)
            if st.ram_slot >= 0:
                self.ram_pending.discard(st.uid)
                if ok:
                    self.ram.insert(st.uid, st.ram_slot)
                else:
                    self.ram.release(st.ram_slot)

    def written(self, st: Step, stored: bool, in_ram: bool) -> None:
        with self.lock:
            if st.slot >= 0:
                self.pending.discard(st.uid)
                if stored:
                    self.sto.insert(st.uid, st.slot)
                else:
                    self.sto.release(st.slot)
            if st.ram_slot >= 0:
                self.ram_pending.discard(st.uid)
                if in_ram:
                    self.ram.insert(st.uid, st.ram_slot)
                else:
                    self.ram.release(st.ram_slot)

    def stored_slots(self) -> list[tuple[int, int]]:
        with self.lock:
            return list(self.sto.map.items())
