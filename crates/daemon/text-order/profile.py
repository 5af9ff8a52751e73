#!/usr/bin/env python3
"""Which of had's functions run: the list `just text-order` writes to symbols.txt.

An idle had runs a few hundred functions spread over its code, and the kernel maps each
fault's 64 KiB neighbourhood with it (fault-around), so its resident code is most of the
binary. A release link that places the functions that run next to each other
(build.rs, lld's --symbol-ordering-file) leaves a few blocks instead.

This script puts a uprobe (tracefs) on the first instruction of every function of the release
had, runs a command (a bench lab with that had), and names every function whose probe was hit
by any process (had and had-guard, both nodes): those hit in the most sampling intervals first
(the idle loop's), then the others, each rank in the binary's own order. The functions come
from the linker's map of that build.

Root only: it mounts tracefs in this process's own mount namespace (run it under
`unshare -m`) and removes its probes when it ends, also on failure or Ctrl-C; probes of
others are left alone.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile

MAP_LINE = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+( +)(\S.*?)\s*$")


def exec_segments(binary):
    """(vaddr, offset, filesz) of each executable LOAD segment, from readelf."""
    out = subprocess.run(
        ["readelf", "-lW", binary], check=True, capture_output=True, text=True
    ).stdout
    segs = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "LOAD" and "E" in f[6:-1]:
            segs.append((int(f[2], 16), int(f[1], 16), int(f[4], 16)))
    if not segs:
        sys.exit(f"profile: {binary} has no executable segment")
    return segs


def sections(mapfile, binary):
    """(file offset, size, first symbol) of each code section of the link, from lld's map.

    The map, not the binary's symbol table: the release binary is stripped, and a build with
    symbols is another cargo profile, whose crate hashes and so symbol names differ.
    """
    segs = exec_segments(binary)
    out = []
    cur = None
    in_text = False
    with open(mapfile) as m:
        for line in m:
            # "VMA LMA Size Align" then the name, indented one space for an output section,
            # nine for an input section and seventeen for a symbol (lld's -Map layout).
            r = MAP_LINE.match(line)
            if not r:
                continue
            vma, size = int(r[1], 16), int(r[2], 16)
            level, rest = len(r[3]) // 8, r[4]
            if level == 0:
                in_text = rest == ".text"
                cur = None
            elif level == 1:
                cur = None
                if in_text and size and rest.endswith(")") and ":(" in rest:
                    cur = [vma, size, None]
                    out.append(cur)
            elif cur is not None and cur[2] is None:
                cur[2] = rest
    funcs = []
    for vma, size, name in out:
        if name is None:
            continue
        for vaddr, off, filesz in segs:
            if vaddr <= vma < vaddr + filesz:
                funcs.append((vma - vaddr + off, size, name))
                break
    if not funcs:
        sys.exit(f"profile: no code sections with symbols in {mapfile}")
    return funcs


def read_hits(mnt, binary):
    """Hits so far of each of our probes (on `binary`, named f<index>), by index."""
    hits = {}
    with open(os.path.join(mnt, "uprobe_profile")) as prof:
        for line in prof:
            f = line.split()
            if len(f) == 3 and f[0] == binary and f[1][:1] == "f" and f[1][1:].isdigit():
                hits[int(f[1][1:])] = int(f[2])
    return hits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the had the command runs")
    ap.add_argument("--map", required=True, help="lld's map of that link (HA_TEXT_MAP)")
    ap.add_argument("--out", required=True, help="the symbol list to write")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run")
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        sys.exit("profile: give the command to run after --")
    funcs = sections(a.map, a.binary)
    binary = os.path.realpath(a.binary)

    mnt = tempfile.mkdtemp(prefix="had-text-order-")
    subprocess.run(["mount", "-t", "tracefs", "tracefs", mnt], check=True)
    group = f"hadorder{os.getpid()}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    added = []
    hits = {}
    try:
        fd = os.open(os.path.join(mnt, "uprobe_events"), os.O_WRONLY | os.O_APPEND)
        try:
            # One write per probe: the kernel parses each write as one definition.
            for i, (off, _, _) in enumerate(funcs):
                os.write(fd, f"p:{group}/f{i} {binary}:0x{off:x}\n".encode())
                added.append(i)
            enable = os.path.join(mnt, "events", group, "enable")
            with open(enable, "w") as e:
                e.write("1")
            child = subprocess.Popen(cmd)
            # A function the idle loop runs is hit in nearly every interval; one of start-up or
            # of a drill in a few. The list puts the former first, so that they share blocks.
            last = {}
            while True:
                try:
                    rc = child.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    rc = None
                now = read_hits(mnt, binary)
                for i, n in now.items():
                    if n > last.get(i, 0):
                        hits[i] = hits.get(i, 0) + 1
                last = now
                if rc is not None:
                    break
            with open(enable, "w") as e:
                e.write("0")
        finally:
            try:
                with open(os.path.join(mnt, "events", group, "enable"), "w") as e:
                    e.write("0")
            except OSError:
                pass
            for i in added:
                try:
                    os.write(fd, f"-:{group}/f{i}\n".encode())
                except OSError:
                    pass
            os.close(fd)
    finally:
        subprocess.run(["umount", mnt], check=False)
        os.rmdir(mnt)
    if rc != 0:
        sys.exit(f"profile: the command exited {rc}; symbols.txt left as it was")

    ran = [i for i, n in hits.items() if n > 0]
    if not ran:
        sys.exit(f"profile: no function of {binary} ran")
    # Most intervals first, then the binary's order.
    hot = [funcs[i] for i in sorted(ran, key=lambda i: (-hits[i], funcs[i][0]))]
    names = [n for _, _, n in hot]
    text = sum(s for _, s, _ in funcs)
    with open(a.out, "w") as o:
        o.write("\n".join(names) + "\n")
    print(
        f"profile: {len(names)} of {len(funcs)} functions ran, "
        f"{sum(s for _, s, _ in hot) // 1024} KiB of {text // 1024} KiB of code, "
        f"written to {a.out}"
    )


if __name__ == "__main__":
    main()
