"""The ctypes mirrors of the C structures have the headers' sizes and offsets:
a C program compiled against include/ prints them, and every one must match."""

import ctypes
import os
import shutil
import subprocess

import pytest

from conftest import REPO
from expertcast import _lib


def test_struct_layouts_match_headers(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    inc = os.path.join(REPO, "include")
    if not cc or not os.path.isdir(inc):
        msg = "needs a C compiler and the repository's include/ (not an installed copy)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "expertcast.h"',
             "int main(void) {"]
    want = {}
    for cls in _lib.MIRRORED:
        name = cls.__name__
        lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
        want[name] = ctypes.sizeof(cls)
        for field, _ in cls._fields_:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
            want[f"{name}.{field}"] = getattr(cls, field).offset
    lines.append("return 0; }")
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "abi"
    subprocess.run([cc, "-std=c11", "-I", inc, str(src), "-o", str(exe)], check=True)
    got = dict(line.split() for line in subprocess.run(
        [str(exe)], check=True, capture_output=True, text=True).stdout.splitlines())
    got = {k: int(v) for k, v in got.items()}
    # every C structure's size too, so a field added in C is caught
    bad = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
    assert not bad, f"ctypes vs C (ctypes, C): {bad}"
