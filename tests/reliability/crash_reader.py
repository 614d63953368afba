"""A tailing reader for T8: follows a journal read-only while another process writes it.

Run as ``python crash_reader.py ROOT AGENT OUT STOPFILE``. Keeps one read-only ``Journal`` and
calls ``records(from_seq=next)`` in a loop, writing ``S <seq> <hash>`` for every record it
sees to ``OUT``; it reports ``E`` for a seq that is not the next one (a gap, a duplicate, or
disorder) or for a typed error. Every 10th pass it re-reads the whole history and reports ``C``
if a record it saw before has changed or disappeared. Stops when ``STOPFILE`` exists (after a
last pass).
"""

from __future__ import annotations

import os
import sys
import warnings

from agentjournal import Journal, JournalError, JournalNotFoundError


def main() -> None:
    root, agent, out_path, stop = sys.argv[1:5]
    warnings.simplefilter("ignore")
    seen: dict[int, str] = {}
    nxt = 1
    passes = 0
    j = None
    with open(out_path, "w", encoding="ascii") as out:
        while True:
            last_pass = os.path.exists(stop)
            if j is None:
                try:
                    j = Journal(agent, root, readonly=True)
                except JournalNotFoundError:
                    if last_pass:
                        break
                    continue
            lines = []
            try:
                for rec in j.records(from_seq=nxt):
                    if rec.seq != nxt:
                        lines.append(f"E seq {rec.seq} where {nxt} was expected\n")
                    seen[rec.seq] = rec.h
                    nxt = rec.seq + 1
                    lines.append(f"S {rec.seq} {rec.h}\n")
                passes += 1
                if passes % 10 == 0 or last_pass:
                    full = {r.seq: r.h for r in j.records()}
                    for seq, h in seen.items():
                        if full.get(seq) != h:
                            lines.append(f"C {seq} {h} {full.get(seq)}\n")
            except (JournalError, OSError) as e:
                lines.append(f"E {type(e).__name__}: {e}\n".replace("\n", " ") + "\n")
            out.writelines(lines)
            out.flush()
            if last_pass:
                break
        out.write(f"P {passes}\n")
    if j is not None:
        j.close()


if __name__ == "__main__":
    main()
