"""Errors and small helpers shared by the package's modules."""

import ctypes
import os
import tempfile

from . import _lib
from ._lib import lib


class Error(Exception):
    """A libexpertcast call failed. `status` is the library's ec_status (an int),
    `status_name` its English name, and str(e) the library's message."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = lib.ec_status_str(self.status).decode()
        super().__init__(message or self.status_name)


class NotFoundError(Error, LookupError):
    """EC_ERR_NOT_FOUND: an unknown predictor, policy or profile name."""


class ParseError(Error, ValueError):
    """EC_ERR_PARSE: malformed input data; the message names file, line and field."""


class BusyError(Error):
    """EC_ERR_BUSY: every slot of the pool is pinned; release, then retry."""


_BY_STATUS = {_lib.EC_ERR_NOT_FOUND: NotFoundError, _lib.EC_ERR_PARSE: ParseError,
              _lib.EC_ERR_BUSY: BusyError}


def raise_status(status, message):
    cls = _BY_STATUS.get(int(status), Error)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    raise cls(status, message)


def check(status, err=None, message=None):
    """Raises the exception for a non-zero ec_status with the message from an
    ec_error (err) or the given text (message)."""
    if status:
        if message is None and err is not None:
            message = err.message
        raise_status(status, message)


def fsencode(path):
    return os.fsencode(os.fspath(path))


def write_via_file(writer):
    """Calls writer(FILE*) on a temporary file and returns what it wrote, as text.
    Used for the library's JSON writers, which write to a stdio stream."""
    fd, path = tempfile.mkstemp(prefix="expertcast-", suffix=".json")
    os.close(fd)
    try:
        fp = _lib.libc.fopen(fsencode(path), b"w")
        if not fp:
            raise OSError(ctypes.get_errno(), f"cannot open {path}")
        try:
            writer(fp)
        finally:
            _lib.libc.fclose(fp)
        with open(path, encoding="utf-8") as f:
            return f.read()
    finally:
        os.unlink(path)


def version():
    """The library's version string, e.g. "0.1.0"."""
    return lib.ec_version().decode()
