"""systemd's own EnvironmentFile= parser, run on a file: what a unit's processes would get in their environment.

PID 1 reads every EnvironmentFile= with `load_env_file()` from libsystemd-shared (src/basic/env-file.c); this
calls that function of the installed systemd package through ctypes, in a child process so that the library never
loads into the test runner. No systemd needs to run as PID 1. Run as a script: prints the variables as JSON.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY_PATTERNS = ("/usr/lib/*/systemd/libsystemd-shared-*.so", "/usr/lib/systemd/libsystemd-shared-*.so",
                    "/lib/systemd/libsystemd-shared-*.so")


def shared_library() -> str:
    """The installed libsystemd-shared. Missing on a developer's machine: skip; in CI (which installs the
    `systemd` package) a missing parser is a failure."""
    for pattern in LIBRARY_PATTERNS:
        if found := sorted(glob.glob(pattern)):
            return found[-1]
    message = "systemd's libsystemd-shared is not installed (apt-get install systemd)"
    if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def systemd_environment(path: Path) -> dict[str, str]:
    """The variables systemd sets from the environment file at `path`. Anything the parser logs (an invalid
    line, a bad name) fails the call: systemd would have dropped or changed that line."""
    done = subprocess.run([sys.executable, __file__, shared_library(), str(path)], capture_output=True,
                          text=True, timeout=60, env={"SYSTEMD_LOG_LEVEL": "debug", "SYSTEMD_LOG_TARGET": "console"})
    assert done.returncode == 0 and not done.stderr.strip(), f"systemd's parser complained:\n{done.stderr}"
    return dict(entry.split("=", 1) for entry in json.loads(done.stdout))


def _load_env_file(library: str, path: str) -> list[str]:
    load_env_file = ctypes.CDLL(library).load_env_file
    # int load_env_file(FILE *f, const char *fname, char ***ret): with f NULL it opens fname itself.
    load_env_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p))]
    load_env_file.restype = ctypes.c_int
    entries = ctypes.POINTER(ctypes.c_char_p)()
    result = load_env_file(None, path.encode(), ctypes.byref(entries))
    if result < 0:
        raise OSError(-result, f"load_env_file({path}) failed")
    found = []
    while entries[len(found)] is not None:
        found.append(entries[len(found)].decode())
    return found


if __name__ == "__main__":
    print(json.dumps(_load_env_file(sys.argv[1], sys.argv[2])))
