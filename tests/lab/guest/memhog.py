"""Runs inside a lab guest: commits and touches anonymous memory, like a database's
buffer pool (e.g. InnoDB's or shared_buffers) or a greedy query.

  memhog.py --mb N [--hold] [--ready FILE]

One private anonymous mmap of N MiB: in overcommit mode 2 the mmap itself is refused
(ENOMEM) when it would push Committed_AS over the limit. Otherwise every page is
written so it is really resident. Prints and writes to FILE "READY <pid> <mb>" once
all pages are touched; with --hold it then sleeps until killed, else prints "DONE".
Exit status 3 with "ENOMEM ..." when the allocation is refused.
"""
import argparse
import errno
import mmap
import os
import sys
import time

CHUNK = 1 << 20  # write 1 MiB at a time: few Python steps, every page touched


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, required=True)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--ready")
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    try:
        region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            print(f"ENOMEM {exc}", flush=True)
            return 3
        raise
    ones = b"\x01" * CHUNK
    for offset in range(0, size, CHUNK):
        region[offset:offset + CHUNK] = ones[: min(CHUNK, size - offset)]
    line = f"READY {os.getpid()} {args.mb}"
    print(line, flush=True)
    if args.ready:
        with open(args.ready + ".tmp", "w") as fh:
            fh.write(line + "\n")
        os.rename(args.ready + ".tmp", args.ready)
    if args.hold:
        while True:
            time.sleep(3600)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
