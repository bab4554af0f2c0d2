"""The one kind of error a user's input causes (a file, a value, a choice), the checks of
input files shared by every reader, and the limits that keep hostile input from
exhausting the machine. Everything else that goes wrong is a bug and keeps its traceback."""
import os
import stat


class InputError(ValueError):
    """Bad input: the message names what was given and what is wrong with it. The command
    line prints it in one line; a library caller can catch it (or ValueError)."""


def regular_file(path, what, error=InputError):
    """`path` as a string if it names a regular file; else `error` saying what it is. Checked
    by type before anything opens it: a FIFO would block the reader, a device never end."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as problem:
        raise error(f"{path}: cannot read this {what} ({problem.strerror})") from None
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise error(f"{path}: is a special file (pipe, device or socket), not a {what}")
    return path


def limit(name, default):
    """A ceiling on what input may ask of the machine, from $DEEPINSIDE_<NAME> or the default."""
    variable = f"DEEPINSIDE_{name}"
    text = os.environ.get(variable)
    if text is None:
        return default
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"${variable} must be a positive number, got {text!r}")
    return value
