"""A writer child for T1 and T8: appends deterministic steps and reports every acknowledged seq.

Run as ``python crash_child.py CONFIG_JSON``. It opens (so recovers) the journal, writes
``R <last_seq> <last_step>``, then appends ``state_for(step)`` for the next steps and after each
append returns (in ``sync`` mode: after ``fdatasync``) writes ``A <last_seq>`` to the report
pipe (unbuffered: one ``write`` per line, so the parent sees it at once).

With ``pause`` set, a file-ops shim stops before and after every call that creates, syncs,
renames, truncates or removes a file (``B``/``E <category> <op> <name>``) until the parent writes
one byte: the parent SIGKILLs it there to crash at an exact point inside a snapshot write, a
segment roll, compaction or recovery. Categories: ``recovery`` (before ``R``), ``snapshot``,
``roll``, ``compaction``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from crash_helpers import state_for

from agentjournal import Journal, _fs


def main() -> None:
    cfg = json.loads(sys.argv[1])
    out_fd: int = cfg["out_fd"]
    in_fd: int | None = cfg.get("in_fd")

    def send(line: str) -> None:
        os.write(out_fd, line.encode())

    phase = {"ready": False, "cat": "roll"}
    names: dict[int, str] = {}

    def category(op: str, name: str) -> str:
        if not phase["ready"]:
            return "recovery"
        if op == "fsync" and name in ("segments", "snapshots"):
            return phase["cat"]
        if op == "unlink" or name.endswith(".jsonl.lz4"):
            cat = "compaction"
        elif name.endswith((".json", ".json.lz4")):
            cat = "snapshot"
        elif name.endswith(".jsonl"):
            cat = "roll"
        else:
            cat = phase["cat"]
        phase["cat"] = cat
        return cat

    class PauseOps(_fs.FileOps):
        def _pause(self, when: str, op: str, name: str) -> None:
            send(f"{when} {category(op, name)} {op} {name}\n")
            if not os.read(in_fd, 1):  # type: ignore[arg-type]
                os._exit(0)

        def open(self, name: str, flags: int, mode: int = _fs.FILE_MODE,
                 dir_fd: int | None = None) -> int:
            if flags & os.O_CREAT:
                self._pause("B", "create", os.path.basename(name))
            fd = super().open(name, flags, mode, dir_fd)
            names[fd] = os.path.basename(name)
            if flags & os.O_CREAT:
                self._pause("E", "create", os.path.basename(name))
            return fd

        def close(self, fd: int) -> None:
            names.pop(fd, None)
            super().close(fd)

        def fsync(self, fd: int) -> None:
            name = names.get(fd, "?")
            self._pause("B", "fsync", name)
            super().fsync(fd)
            self._pause("E", "fsync", name)

        def ftruncate(self, fd: int, size: int) -> None:
            name = names.get(fd, "?")
            self._pause("B", "truncate", name)
            super().ftruncate(fd, size)
            self._pause("E", "truncate", name)

        def replace(self, src: str, dst: str, dir_fd: int) -> None:
            self._pause("B", "replace", dst)
            super().replace(src, dst, dir_fd)
            self._pause("E", "replace", dst)

        def unlink(self, name: str, dir_fd: int) -> None:
            self._pause("B", "unlink", name)
            super().unlink(name, dir_fd)
            self._pause("E", "unlink", name)

    if cfg.get("pause"):
        _fs.ops = PauseOps()
    warnings.simplefilter("ignore")  # recovery warnings are expected; the parent checks
    j = Journal(cfg["agent"], cfg["root"], **cfg["options"])
    j.resume()
    phase["ready"] = True
    send(f"R {j.last_seq} {j.last_step}\n")
    if cfg.get("hold"):
        os.read(in_fd, 1)  # type: ignore[arg-type]
    step = j.last_step
    end = step + cfg.get("steps", 400)
    while step < end:
        step += 1
        j.append(state_for(step))
        send(f"A {j.last_seq}\n")
    j.close()
    send("D\n")


if __name__ == "__main__":
    main()
