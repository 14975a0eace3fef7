"""What a source remembers across its connections to recover state: dedup, sequence, counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from bridge.config.model import SourceConfig
from bridge.messages import Message
from bridge.routing.template import Context, TemplateError
from bridge.upstream.actions import Action, Deliver, Notice
from bridge.upstream.dedup import DedupWindow, hashable
from bridge.upstream.sequence import LogLimit, SequenceTracker


def _more(held: int) -> str:
    return f" ({held} more since the last report)" if held else ""


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict on one data message: deliver it?, lines to log, what to do about a gap."""
    keep: bool = True
    notes: tuple[str, ...] = ()
    on_gap: str | None = None  # "resubscribe" or "reconnect"
    gap: str = ""  # the gap, described

    def actions(self, msg: Message) -> list[Action]:
        """The notes to log, then ``msg`` delivered unless it is dropped."""
        return [*(Notice(note) for note in self.notes), *([Deliver(msg)] if self.keep else [])]


_NOTES: Final = {
    "no_key": "a message without a dedup key: forwarded unchecked",
    "no_seq": "a message without a sequence number: not checked for gaps",
}
KEEP: Final = Check()
DROP: Final = Check(keep=False)


class Recovery:
    """One source's dedup window (it survives reconnects: that is when upstreams replay),
    sequence tracker (reset on every (re)subscribe) and recovery counts, by reason:
    duplicate, no_key, gap, no_seq, resubscribe. The client builds it; each Session uses it.
    ``previous``: the one a reload's restart of the source replaces; its window is kept when
    the dedup settings are the same, since the upstream replays to the new connection too."""

    def __init__(self, cfg: SourceConfig, previous: Recovery | None = None) -> None:
        self.source, self.dedup, self.sequence = cfg.name, cfg.dedup, cfg.sequence
        self.active = cfg.dedup is not None or cfg.sequence is not None
        self.counts: Counter[str] = Counter()
        self.limit = LogLimit()
        self._window = DedupWindow(cfg.dedup.window) if cfg.dedup else None
        if previous is not None and cfg.dedup is not None and previous.dedup == cfg.dedup:
            self._window = previous._window
        self._tracker = SequenceTracker(cfg.sequence) if cfg.sequence else None
        self._ctx = Context(cfg.name)  # refilled per message: rendering keeps no reference

    def reset(self) -> None:
        """A (re)subscribe or a new connection: every stream's numbering starts afresh."""
        if self._tracker is not None:
            self._tracker.reset()

    def check(self, value: Any, raw: str | bytes, now: float, ordered: bool = True) -> Check:
        """Dedup, then (when ``ordered``: once subscribed) the sequence check."""
        ctx, notes = self._ctx, []
        ctx.msg, ctx.raw = value, raw
        if self.dedup is not None and self._window is not None:
            try:
                key = hashable(self.dedup.key.render(ctx))
            except TemplateError:
                key = None
                notes = self._note("no_key", now)
            if key is not None and self._window.seen(key):
                self.counts["duplicate"] += 1
                return DROP
        if self._tracker is None or not ordered:
            return Check(notes=tuple(notes)) if notes else KEEP
        found = self._tracker.read(ctx)
        gap = None if found is None else self._tracker.observe(*found)
        if found is None:
            notes += self._note("no_seq", now)
        if gap is None:
            return Check(notes=tuple(notes)) if notes else KEEP
        self.counts["gap"] += 1
        on_gap = self._tracker.spec.on_gap
        if on_gap != "reconnect" and (held := self.limit.due(("gap", gap.stream), now)) is not None:
            then = ", resubscribing" if on_gap == "resubscribe" else ""
            notes.append(f"{gap}{then}{_more(held)}")
        return Check(True, tuple(notes), None if on_gap == "log" else on_gap, str(gap))

    def _note(self, reason: str, now: float) -> list[str]:
        self.counts[reason] += 1
        held = self.limit.due(reason, now)
        return [] if held is None else [_NOTES[reason] + _more(held)]
