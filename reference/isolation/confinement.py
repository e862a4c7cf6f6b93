"""Confinement: a child that writes only in its folder and reads only its folder
and the files Python needs (Linux Landlock, kernel 5.13 or later).

A grader runs each submission's code in a child whose working directory is a
temporary copy of that submission (``Isolation.folder``).  With
``Isolation.confine`` the child, before it loads the code, asks the kernel
(``landlock_restrict_self``) to refuse every file access but:

* reading and running what Python and the installed packages need: the
  interpreter's prefixes and site-packages, ``/usr``, ``/lib``, ``/etc`` ...
  (not ``sys.path``, which may hold the folder a grader was started in, and
  so the submissions);
* reading and writing in its folder (no devices, pipes or sockets made
  there), and ``/dev/null``, ``/dev/zero``, ``/dev/urandom``;
* from ABI 4 (Linux 6.7), no TCP connection or listening port: nothing to
  reach a grader's Dask scheduler, or the network;
* from ABI 6 (Linux 6.12), no signal and no abstract Unix socket outside
  the domain: the checker, or a grader's worker, cannot be killed by the
  code it runs.

``shortfalls()`` names what this kernel's Landlock cannot refuse, which a
grader's summary says.  A process the code starts and detaches (a double
fork into a new session) escapes the child's process group; the checker
that starts a confined child becomes the subreaper of its descendants, so
such a process comes back to it and is killed with the child
(``processes.adopt_orphans``).  Not covered at any ABI: UDP.

So one student's code cannot read another's files or write outside its own
folder; an ``open`` elsewhere raises ``PermissionError`` in the user's code,
which the report shows as that code's error.  Files the child had open before
(its pipe, its output files) stay usable.  Nothing here is needed to check
one's own code; it is for running many people's.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

# The system call numbers (the same on x86-64 and arm64) and constants of
# linux/landlock.h.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
# Filesystem rights by the ABI version that introduced them.
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI_1 = (1 << 13) - 1  # execute .. make_sym
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
READ = _EXECUTE | _READ_FILE | _READ_DIR
# Places every Python installation reads from, beside its own prefixes.
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys")
# Rights a folder of the user's does not need: making devices, pipes, sockets.
_MAKE_DEVICES = (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11)  # char, sock, fifo, block
# The devices Python and NumPy open: written (null) or read.
DEVICES = {"/dev/null": _WRITE_FILE | _READ_FILE, "/dev/zero": _READ_FILE,
           "/dev/urandom": _READ_FILE, "/dev/random": _READ_FILE}  # fmt: skip
# ABI 4: TCP bind and connect; ABI 6: abstract Unix sockets and signals.
_BIND_TCP, _CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock's ABI version here; 0 where it is missing (not Linux, an old
    kernel, or Landlock not enabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0),
                              ctypes.c_uint32(_CREATE_RULESET_VERSION))  # fmt: skip
    return max(0, int(version))


def handled(abi: int) -> int:
    """Every filesystem right the kernel of ``abi`` knows (all of them refused
    unless a rule allows them)."""
    rights = _ABI_1
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


def shortfalls(*, abi: int | None = None) -> list[str]:
    """What a confined child can still do on this kernel (``abi``: its ABI)."""
    abi = abi_version() if abi is None else abi
    if abi == 0:
        return ["everything: Landlock is not available"]
    missing = []
    if abi < 4:
        missing.append("open TCP connections (Landlock ABI 4, Linux 6.7)")
    if abi < 6:
        missing.append("send signals to other processes (Landlock ABI 6, Linux 6.12)")
    return missing


def readable_places(folder: str) -> list[str]:
    """What a confined child may read: Python's prefixes and site-packages, the
    system's folders, this package, and ``folder``; existing directories only."""
    import site

    packages = [*site.getsitepackages(), site.getusersitepackages()]
    places = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
              *packages, *SYSTEM, *_packages(), folder]  # fmt: skip
    found = []
    for place in places:
        path = os.path.realpath(place or folder)
        if os.path.isdir(path) and path not in found:
            found.append(path)
    return found


def _packages() -> list[str]:
    """Where manual_bp and manual_bp_reference are: the child imports from them
    (an editable install finds them outside ``sys.path``)."""
    import importlib.util

    found = []
    for name in ("manual_bp", "manual_bp_reference"):
        spec = importlib.util.find_spec(name)
        found += list(spec.submodule_search_locations or []) if spec is not None else []
    return found


def confine(folder: str, readable: Iterable[str]) -> None:
    """Restrict this process (and what it starts) for good: read ``readable``,
    read and write ``folder``, the ``DEVICES``; no TCP, no signal out (as the
    ABI allows: the module notes).  ``OSError`` when the kernel refuses
    (``abi_version()`` says whether it can)."""
    abi = abi_version()
    if abi == 0:
        raise OSError("Landlock is not available on this system")
    libc, rights = _libc(), handled(abi)
    network = _BIND_TCP | _CONNECT_TCP if abi >= 4 else 0  # handled, and no port allowed
    scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(rights, network, scoped)
    # The struct as long as this ABI knows it: 8 bytes before ABI 4, 16 before 6.
    size = ctypes.c_size_t(24 if abi >= 6 else 16 if abi >= 4 else 8)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), size, ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        allowed = [(path, READ) for path in readable]
        allowed += [(folder, rights & ~_MAKE_DEVICES), *DEVICES.items()]
        for path, access in allowed:
            _allow(libc, ruleset, path, access)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # nothing there to allow
    try:
        if not os.path.isdir(path):  # a file takes only the rights of files
            access &= _EXECUTE | _WRITE_FILE | _READ_FILE | _TRUNCATE | _IOCTL_DEV
        beneath = _PathBeneathAttr(access, fd)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(beneath),
                        ctypes.c_uint32(0)) != 0:  # fmt: skip
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)
