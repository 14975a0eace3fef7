"""Which connection of a pool carries which item, stably.

Slots are connections, numbered from 0. The first placement fills them in order, up to
``per_connection`` each. Later placements (a reload) keep every item that stays where it is:
removed items leave their slot, added ones go to the slots with room, lowest first, and a new
slot opens only when none has room. So a reload touches only the connections whose items
changed, and a dropped connection always resubscribes the same share."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Change:
    """What one slot gains and loses in a placement (``opened``: the slot is new)."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    opened: bool = False


@dataclass(slots=True)
class Assignment:
    """Items by slot, at most ``per`` a slot and ``slots`` slots."""
    per: int
    slots: int
    shares: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def place(self, items: tuple[str, ...]) -> dict[int, Change]:
        """Assign ``items`` (all of them, in their order), keeping what stays; the change of
        every slot that has one. A slot left with no items is closed: it loses them all.
        Raises ValueError when they do not fit (``check`` refuses such a config first)."""
        wanted, changes = set(items), dict[int, Change]()
        for slot, share in list(self.shares.items()):
            kept = tuple(item for item in share if item in wanted)
            if len(kept) < len(share):
                changes[slot] = Change(removed=tuple(i for i in share if i not in wanted))
                self.shares[slot] = kept
        placed = {item for share in self.shares.values() for item in share}
        fresh = [item for item in items if item not in placed]
        for slot in range(self.slots):
            if not fresh:
                break
            share, room = self.shares.get(slot, ()), self.per - len(self.shares.get(slot, ()))
            if room <= 0:
                continue
            taken, fresh = tuple(fresh[:room]), fresh[room:]
            before = changes.get(slot, Change())
            changes[slot] = Change(taken, before.removed, slot not in self.shares)
            self.shares[slot] = share + taken
        if fresh:
            raise ValueError(f"{len(fresh)} items do not fit in {self.slots} slots of {self.per}")
        for slot in [s for s, share in self.shares.items() if not share]:
            del self.shares[slot]
        return changes
