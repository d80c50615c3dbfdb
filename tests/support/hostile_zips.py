#!/usr/bin/env python3
"""Writes hostile zip archives (and one good one) for catty's upload tests.

Usage: python3 tests/support/hostile_zips.py OUTDIR

Writes OUTDIR/<case>.zip and OUTDIR/cases.json, a list of
{"file": "abs.zip", "bad_entry": "/etc/evil"} where bad_entry is the entry the server's
400 must name (null for good.zip). Every hostile archive stores a good file, ok.txt, before
the bad entry, so a test can check that nothing partial is left in the workspace.
Python 3.11 standard library only.
"""

import json
import stat
import sys
import warnings
import zipfile
from pathlib import Path

UNIX = 3  # create_system: the external attributes hold st_mode in their high 16 bits
WHEN = (2024, 5, 17, 12, 30, 0)
MIB = 1 << 20
BOMB_BYTES = (1 << 30) + MIB  # just past the 1 GiB uncompressed limit
MANY_ENTRIES = 200_001  # with ok.txt, two past the 200,000-entry limit


def info(name, mode, method=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(name, date_time=WHEN)
    zi.create_system = UNIX
    zi.external_attr = mode << 16
    zi.compress_type = method
    return zi


def add_file(zf, name, data=b"fine\n", perm=0o644):
    zf.writestr(info(name, stat.S_IFREG | perm), data)


def add_dir(zf, name):
    zf.writestr(info(name, stat.S_IFDIR | 0o755, zipfile.ZIP_STORED), b"")


def add_link(zf, name, target):
    zf.writestr(info(name, stat.S_IFLNK | 0o777, zipfile.ZIP_STORED), target)


def add_special(zf, name, file_type):
    zf.writestr(info(name, file_type | 0o644, zipfile.ZIP_STORED), b"")


def add_duplicate(zf):
    add_file(zf, "dup.txt", b"first\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": that is the point
        add_file(zf, "dup.txt", b"second\n")


def add_many(zf):
    # Stored and empty: the cheapest entries zipfile can write.
    for i in range(MANY_ENTRIES):
        zf.writestr(info(f"many/{i}", stat.S_IFREG | 0o644, zipfile.ZIP_STORED), b"")


def add_bomb(zf):
    # Streamed in chunks so neither Python nor the zip writer holds 1 GiB.
    chunk = bytes(MIB)
    with zf.open(info("bomb.bin", stat.S_IFREG | 0o644), "w", force_zip64=True) as out:
        for _ in range(BOMB_BYTES // MIB):
            out.write(chunk)


def add_good(zf):
    add_file(zf, "run.sh", b"#!/bin/sh\necho hello from the workspace\n", perm=0o755)
    add_dir(zf, "src/")
    add_file(zf, "src/lib.txt", b"library\n")
    add_link(zf, "link", "src/lib.txt")


# (file, bad entry, writer of everything after ok.txt)
HOSTILE = [
    ("abs.zip", "/etc/evil", lambda zf: add_file(zf, "/etc/evil")),
    ("dotdot.zip", "../evil", lambda zf: add_file(zf, "../evil")),
    ("dotdot_nested.zip", "a/../../evil", lambda zf: add_file(zf, "a/../../evil")),
    ("symlink_out.zip", "ln", lambda zf: add_link(zf, "ln", "../../etc")),
    ("symlink_abs.zip", "ln", lambda zf: add_link(zf, "ln", "/etc/passwd")),
    (
        "through_symlink.zip",
        "ln/x",
        lambda zf: (add_dir(zf, "sub/"), add_link(zf, "ln", "sub"), add_file(zf, "ln/x")),
    ),
    (
        "chain_symlink.zip",
        "l2",
        lambda zf: (add_link(zf, "l1", "."), add_link(zf, "l2", "l1/../x")),
    ),
    ("device.zip", "dev", lambda zf: add_special(zf, "dev", stat.S_IFCHR)),
    ("fifo.zip", "fifo", lambda zf: add_special(zf, "fifo", stat.S_IFIFO)),
    ("duplicate.zip", "dup.txt", add_duplicate),
    ("file_as_parent.zip", "a/b", lambda zf: (add_file(zf, "a"), add_file(zf, "a/b"))),
    ("bomb.zip", "bomb.bin", add_bomb),
]


# (file, what the refusal says, writer): refused as a whole, before any entry is read.
REFUSED = [
    ("too_many_entries.zip", "more than the 200000 entries allowed", add_many),
]


def corrupt_deflate(path, name):
    # Garbage over the start of NAME's deflate stream, past its local header and name.
    data = bytearray(path.read_bytes())
    at = data.index(name.encode(), data.index(b"PK\x03\x04", 1)) + len(name) + 10
    data[at : at + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))


def write_zip(path, fill, with_ok=True):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        if with_ok:
            add_file(zf, "ok.txt")
        fill(zf)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for file, bad_entry, fill in HOSTILE:
        write_zip(out / file, fill)
        cases.append({"file": file, "bad_entry": bad_entry})
    # A deflate stream that does not decode: the entry is named like any other bad one.
    data = bytes(range(256)) * 400
    write_zip(out / "corrupt_deflate.zip", lambda zf: add_file(zf, "data.bin", data))
    corrupt_deflate(out / "corrupt_deflate.zip", "data.bin")
    cases.append({"file": "corrupt_deflate.zip", "bad_entry": "data.bin"})
    for file, message, fill in REFUSED:
        write_zip(out / file, fill)
        cases.append({"file": file, "bad_entry": None, "message": message})
    write_zip(out / "good.zip", add_good, with_ok=False)
    cases.append({"file": "good.zip", "bad_entry": None})
    (out / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")


if __name__ == "__main__":
    main()
