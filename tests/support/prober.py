"""What a ``command.run`` script could steal from the service that started it.

Run as ``python prober.py REPORT``: before opening anything it notes every descriptor
from 3 to 1023 it inherited, and reads what it can from each; then it walks from its
parent up through every ancestor, reading ``/proc/PID/{environ,cmdline,mem,fd}`` (every
writable mapping of ``mem``, where data lives; every descriptor behind ``fd``). Everything it read goes
into REPORT, raw, for the test to search for secrets; each refusal is noted too.
"""

from __future__ import annotations

import os
import stat
import sys

MAX_MEM = 256 << 20  # bytes of one process's writable memory read at most (where its data lives)
CHUNK = 1 << 20


def inherited() -> list[tuple[int, str]]:
    found = []
    for fd in range(3, 1024):
        try:
            os.fstat(fd)
        except OSError:
            continue
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError as exc:
            target = f"? ({exc.strerror})"
        found.append((fd, target))
    return found


def read_fd(fd: int) -> bytes:
    """A regular file's content (a mounted secret, say). Pipes, sockets and event descriptors
    are only noted as open: reading them would take the service's own wake-ups and child
    exit notices, and hang it."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b"(open, not a file: not read)"
        return os.pread(fd, 1 << 16, 0)
    except OSError as exc:
        return f"(read refused: {exc.strerror})".encode()


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return int(stat.read().rsplit(b")", 1)[1].split()[1])


def steal(pid: int, out: list[bytes]) -> None:
    for name in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as file:
                out.append(f"== {pid}/{name}\n".encode() + file.read())
        except OSError as exc:
            out.append(f"== {pid}/{name} refused: {exc.strerror}\n".encode())
    try:
        steal_memory(pid, out)
    except OSError as exc:
        out.append(f"== {pid}/mem refused: {exc.strerror}\n".encode())
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError as exc:
        out.append(f"== {pid}/fd refused: {exc.strerror}\n".encode())
        return
    for name in names:
        path = f"/proc/{pid}/fd/{name}"
        try:
            target = os.readlink(path)
            if not target.startswith("/"):  # pipe:, socket:, anon_inode:: see read_fd
                out.append(f"== {path} ({target}) open, not read\n".encode())
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            out.append(f"== {path} refused: {exc.strerror}\n".encode())
            continue
        try:
            out.append(f"== {path}\n".encode() + read_fd(fd))
        finally:
            os.close(fd)


def steal_memory(pid: int, out: list[bytes]) -> None:
    with open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps:
        regions = [line.split()[:2] for line in maps]
    total = 0
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        out.append(f"== {pid}/mem opened\n".encode())
        for span, perms in regions:
            if not perms.startswith("rw") or total >= MAX_MEM:
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            while start < end and total < MAX_MEM:
                size = min(CHUNK, end - start)
                try:
                    mem.seek(start)
                    out.append(mem.read(size))
                except (OSError, OverflowError, ValueError):
                    break
                start += size
                total += size


def main() -> None:
    report = sys.argv[1]
    fds = inherited()  # first: before this script opens anything
    out = [f"== inherited {fds}\n".encode()]
    out += [f"== fd {fd} ({target})\n".encode() + read_fd(fd) for fd, target in fds]
    pid, seen = os.getppid(), set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        steal(pid, out)
        try:
            pid = parent_of(pid)
        except OSError:
            break
    if 1 not in seen:
        steal(1, out)
    with open(report, "wb") as file:
        for part in out:
            file.write(part)
            file.write(b"\n")
    print(f"inherited descriptors: {len(fds)}; processes read: {sorted(seen)}")


if __name__ == "__main__":
    main()
