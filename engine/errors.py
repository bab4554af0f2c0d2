"""The one kind of error a user's input causes (a file, a value, a choice); everything
else that goes wrong is a bug and keeps its traceback."""


class InputError(ValueError):
    """Bad input: the message names what was given and what is wrong with it. The command
    line prints it in one line; a library caller can catch it (or ValueError)."""
