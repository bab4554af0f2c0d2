"""The three backward modes, defined once (docs/DESIGN.md, "The three backward modes").

Only ReLU's backward rule differs between them; every other op backpropagates exactly.
`Mode` is a str enum, so `Mode.GUIDED == "guided"`; the engine turns a user's string into a
Mode once, at its API boundary (`as_mode`), and the kernels take Modes.
"""
import enum


class Mode(str, enum.Enum):
    BACKPROP = "backprop"    # the true gradient
    DECONVNET = "deconvnet"  # Zeiler and Fergus's DeconvNet
    GUIDED = "guided"        # guided backprop (Springenberg et al.)

    def __str__(self):
        return self.value


MODES = tuple(mode.value for mode in Mode)


def as_mode(value):
    """The Mode named by `value` (a Mode or its string), or one clear ValueError."""
    try:
        return Mode(value)
    except ValueError:
        raise ValueError(f"unknown backward mode {value!r}: expected one of {', '.join(MODES)}") from None
