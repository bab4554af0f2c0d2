"""The engine's rung choices, and choosing them from a GPU run's ladders.

Each family whose ladder has more than one rung the engine could run says which one it runs
in a module constant (`gemm.ENGINE_TILED`, `conv2d.ENGINE_IMPLICIT`, ...: CONSTANTS below).
A GPU session is short (15 device minutes, a machine's start included, and a machine goes
back 30 idle seconds after a call), so the prepared script measures, chooses and measures
again in one call: the ladders write their rows (`ladder FAMILY --json`), this module picks
for each constant the rung that was fastest against the current one, and
`bench/gpu_kernels.py --choices` times the targets with those choices applied. The session
then writes the chosen values into the modules (`--write`), where they are reviewed like
any change.

    python -m deepinside.kernels.choices OUTDIR   # reads OUTDIR/ladder_*.json, writes OUTDIR/engine_choices.json
    python -m deepinside.kernels.choices OUTDIR --batch64 RUN1/gpu_kernels.json   # and an earlier run's batch-64 rows
    python -m deepinside.kernels.choices --write OUTDIR/engine_choices.json   # into the modules' source

The rule: a rung replaces the current one where every row of it validated and the median,
over the shapes (and transpose cases) both were timed on, of its time over the current
one's is below 1 - MARGIN; of several, the lowest median. Winograd's tile (F(2x2, 3x3) or
F(4x4, 3x3)) is chosen so over the rows of all three convolution ladders; then, forward and
backward-data each, whether that tile runs fused (where the shapes both ran take less time
added up fused, past the same margin, and every fused row validated), and the channel
count up to which F(2x2, 3x3) fused runs instead (the one under which the shapes both ran
take the least time added up, past the same margin); then, in each direction, the channel
threshold of the Winograd it runs (Winograd on layers whose smaller of input and output
channels reaches it) is the one under which the 3x3 stride-1 shapes of that direction's
ladder take the least time added up, the chosen Winograd where it applies and the engine
without Winograd elsewhere, if that total beats the engine's without Winograd by the same
margin: a network's time is its layers' sum, and Winograd may lose on one layer by less than
it gains on others (the first H200 run: F(4x4, 3x3)'s backward-data 1.09 times the implicit
GEMM's on VGG-16's 56 x 56 layers, 0.46-0.67 on its 112 x 112 and 224 x 224 ones). Where
the engine already ran Winograd on a shape, its row off Winograd (the ladder's `engine
without winograd`) stands for it against both Winograd and the implicit GEMM's versions.
The wide rung (`gemm.ENGINE_WIDE`: products of 9 to 64 rows on a 64-row tile) by the first
rule over the ladder's products of 9 to 64 rows, against v9's split products (sgemm_splitk,
standing for the engine's split ones, which the ladder does not time).
The channel threshold of F(2x2, 5x5) in each direction is chosen by the same rule over the
5x5 stride-1 shapes, from the rows of the mode that runs it (`winograd`); the 3x3 choices
weigh the 3x3 shapes only.
"""
import argparse
import ast
import glob
import importlib
import json
import os
import re
import statistics
import sys

from .avgpool import VERSIONS as AVGPOOL_VERSIONS
from .batchnorm import VERSIONS as BATCHNORM_VERSIONS
from .conv2d import FEW_CHANNELS_BACKWARD_DATA, FEW_CHANNELS_FORWARD, FUSED_WINOGRAD_TILES, WINOGRAD_TILES
from .depthwise import (BACKWARD_DATA_LADDER as DEPTHWISE_BACKWARD_DATA,
                        BACKWARD_WEIGHTS_LADDER as DEPTHWISE_BACKWARD_WEIGHTS, FORWARD_LADDER as DEPTHWISE_FORWARD,
                        STRIDE_TWO, THROUGH_THE_FORWARD)
from .gemm import TILED
from .ladder import WITHOUT_WINOGRAD
from .launch import KernelError
from .lrn import VERSIONS as LRN_VERSIONS
from .maxpool import KERNEL_SUFFIXES as MAXPOOL_SUFFIXES
from .pad import VERSIONS as PAD_VERSIONS

MARGIN = 0.03  # medians of CUDA-event times on a shared card move by a few percent

# The constants, as "module.NAME", and the values each may take.
CONSTANTS = {"gemm.ENGINE_TILED": tuple(TILED),
             "gemm.ENGINE_WIDE": (False, True),
             "conv2d.ENGINE_IMPLICIT": None,  # a dict: direction -> one of conv2d.IMPLICIT_VERSIONS[direction]
             "conv2d.ENGINE_WINOGRAD_TILE": (2, 4),
             "conv2d.ENGINE_WINOGRAD_CHANNELS": None,  # a dict: direction -> None or a channel count
             "conv2d.ENGINE_WINOGRAD_TILE_FUSED": None,  # a dict: forward, backward_data -> True or False
             "conv2d.ENGINE_WINOGRAD_FUSED": None,  # a dict: forward, backward_data -> None or a channel count
             "conv2d.ENGINE_WINOGRAD_5X5_CHANNELS": None,  # a dict: direction -> None or a channel count
             "conv2d.ENGINE_FEW_CHANNELS_FORWARD": FEW_CHANNELS_FORWARD,
             "conv2d.ENGINE_FEW_CHANNELS_BACKWARD_DATA": FEW_CHANNELS_BACKWARD_DATA,
             "maxpool.ENGINE_VERSION": tuple(MAXPOOL_SUFFIXES),
             "batchnorm.ENGINE_VERSION": tuple(BATCHNORM_VERSIONS),
             "pad.ENGINE_VERSION": tuple(PAD_VERSIONS),
             "avgpool.ENGINE_VERSION": AVGPOOL_VERSIONS,
             "lrn.ENGINE_VERSION": LRN_VERSIONS,
             "depthwise.ENGINE_FORWARD": DEPTHWISE_FORWARD,
             # v1 and the stride-1 rungs through the forward; v1 and the stride-2 rungs
             "depthwise.ENGINE_UNIT_STRIDE_BACKWARD_DATA": DEPTHWISE_BACKWARD_DATA[:1] + THROUGH_THE_FORWARD,
             "depthwise.ENGINE_STRIDED_BACKWARD_DATA": DEPTHWISE_BACKWARD_DATA[:1] + STRIDE_TWO,
             "depthwise.ENGINE_BACKWARD_WEIGHTS": DEPTHWISE_BACKWARD_WEIGHTS}
SKINNY_ROWS = 8  # products of at most this many rows run on the skinny rung whatever ENGINE_TILED says
WIDE_ROWS = 64  # and products of up to this many on the wide rung where ENGINE_WIDE says


def _module(name):
    return importlib.import_module(f".{name}", __package__)


def current():
    """{constant: its value in the modules now}: what a run measures, recorded with its results."""
    values = {}
    for constant in CONSTANTS:
        module, attribute = constant.split(".")
        value = getattr(_module(module), attribute)
        values[constant] = dict(value) if isinstance(value, dict) else value
    return values


# The constants that map each of their directions to a value: (whether a value is allowed,
# what is).
_CHANNELS = (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
             "None or a positive channel count")
BY_DIRECTION = {"conv2d.ENGINE_WINOGRAD_CHANNELS": _CHANNELS, "conv2d.ENGINE_WINOGRAD_FUSED": _CHANNELS,
                "conv2d.ENGINE_WINOGRAD_5X5_CHANNELS": _CHANNELS,
                "conv2d.ENGINE_WINOGRAD_TILE_FUSED": (lambda v: isinstance(v, bool), "true or false")}


def _check(constant, value):
    if constant not in CONSTANTS:
        raise KernelError(f"engine choices: no constant {constant!r}; expected one of {', '.join(CONSTANTS)}")
    if constant == "conv2d.ENGINE_IMPLICIT":
        versions = _module("conv2d").IMPLICIT_VERSIONS
        if not isinstance(value, dict) or set(value) != set(versions) or any(
                v not in versions[d] for d, v in value.items()):
            raise KernelError(f"engine choices: {constant} must map {', '.join(versions)} to one of their versions, "
                              f"got {value!r}")
    elif constant in BY_DIRECTION:
        allowed, wanted = BY_DIRECTION[constant]
        directions = getattr(_module("conv2d"), constant.split(".")[1])
        if not isinstance(value, dict) or set(value) != set(directions) or not all(map(allowed, value.values())):
            raise KernelError(f"engine choices: {constant} must map {', '.join(directions)} to {wanted}, "
                              f"got {value!r}")
    elif value not in CONSTANTS[constant]:
        raise KernelError(f"engine choices: {constant} must be one of {', '.join(CONSTANTS[constant])}, got {value!r}")


def apply(choices):
    """Sets the constants to `choices` ({constant: value}, all checked before any is set)."""
    for constant, value in choices.items():
        _check(constant, value)
    for constant, value in choices.items():
        module, attribute = constant.split(".")
        setattr(_module(module), attribute, dict(value) if isinstance(value, dict) else value)


def load(path):
    """The choices in a JSON file written by this module (or by hand), checked."""
    try:
        with open(path) as handle:
            choices = json.load(handle)
    except (OSError, ValueError) as error:
        raise KernelError(f"engine choices: cannot read {path}: {error}") from None
    if not isinstance(choices, dict):
        raise KernelError(f"engine choices: {path} holds no object of constants")
    for constant, value in choices.items():
        _check(constant, value)
    return choices


# Where the modules that hold the constants are (write's default).
SOURCE_FOLDER = os.path.dirname(os.path.abspath(__file__))


def _source(value):
    """`value` as the modules write it: strings in double quotes, dicts on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_source(key)}: {_source(item)}" for key, item in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def write(choices, folder=None):
    """Writes `choices` ({constant: value}) into the modules' source in `folder` (default
    SOURCE_FOLDER): each constant's value in its assignment replaced, the comments beside it
    and the rest of the file as they were; every value and every assignment is checked
    before any file is written. Returns ["module.NAME: old -> new"] of the constants whose
    value changed: what a GPU session does with its run's engine_choices.json, before it
    reviews the change and the comments beside each constant."""
    for constant, value in choices.items():
        _check(constant, value)
    by_module = {}
    for constant, value in choices.items():
        module, attribute = constant.split(".")
        by_module.setdefault(module, {})[attribute] = value
    texts, changed = {}, []
    for module, values in by_module.items():
        path = os.path.join(folder or SOURCE_FOLDER, f"{module}.py")
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines(keepends=True)
        assigned = {node.targets[0].id: node.value for node in ast.parse("".join(lines)).body
                    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}
        for attribute in values:
            if attribute not in assigned:
                raise KernelError(f"engine choices: {path} assigns no {attribute} at its top level")
        for attribute in sorted(values, key=lambda name: -assigned[name].lineno):  # from the end: lines keep their numbers
            node, value = assigned[attribute], values[attribute]
            old = ast.literal_eval(node)
            if old == value:
                continue
            first, last = lines[node.lineno - 1].encode(), lines[node.end_lineno - 1].encode()  # ast counts bytes
            lines[node.lineno - 1:node.end_lineno] = [(first[:node.col_offset] + _source(value).encode()
                                                       + last[node.end_col_offset:]).decode()]
            changed.append(f"{module}.{attribute}: {_source(old)} -> {_source(value)}")
        texts[path] = "".join(lines)
    for path, text in texts.items():
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    return changed


def _pick(rows, current_label, candidates, group):
    """(chosen label, its median time ratio to the current one, groups compared, whether the
    current one failed a row) among `candidates` ({label: rows' version name}), the rows
    grouped by `group(row)`."""
    times = {}
    failed = set()
    for row in rows:
        label = next((label for label, name in candidates.items() if row["version"] == name), None)
        if label is None:
            continue
        if not row["ok"]:
            failed.add(label)
        times.setdefault(label, {})[group(row)] = row["ms"]
    base = times.get(current_label, {})
    best = (current_label, 1.0, len(base))
    if current_label in failed:
        return best + (True,)
    for label, measured in times.items():
        shared = [key for key in measured if key in base]
        if label == current_label or label in failed or not shared:
            continue
        median = statistics.median(measured[key] / base[key] for key in shared)
        if median < 1 - MARGIN and median < best[1]:
            best = (label, median, len(shared))
    return best + (False,)


def _gemm_rows(rows):
    return [row for row in rows if int(row["shape"].split("x")[0]) > SKINNY_ROWS]


def _shape_numbers(label):
    """{letter(s): number} of a shape label such as "N16 C64 224x224 O64 k3 s1 p1"."""
    return {key: int(value) for key, value in re.findall(r"\b([A-Za-z]+)(\d+)\b", label)}


def _off_winograd(rows):
    """`rows` with the engine's time off Winograd wherever the ladder has it (its
    WITHOUT_WINOGRAD row, as "engine"), so that the implicit GEMM's versions, which the
    ladder times off Winograd, are weighed against the current one's, not against Winograd."""
    off = {row["shape"] for row in rows if row["version"] == WITHOUT_WINOGRAD}
    return [dict(row, version="engine") if row["version"] == WITHOUT_WINOGRAD else row for row in rows
            if not (row["version"] == "engine" and row["shape"] in off)]


def _of_filter(rows, k):
    """The `rows` of stride-1 convolutions of k x k filters: those Winograd F(m x m, k x k)
    runs on."""
    selected = []
    for row in rows:
        numbers = _shape_numbers(row["shape"])
        if numbers.get("k") == k and numbers.get("s") == 1:
            selected.append(row)
    return selected


def _winograd_threshold(rows, mode, k=3):
    """The channel threshold of Winograd `mode` (conv2d.WINOGRAD_TILES) on k x k filters by
    the rule in the module's docstring over one direction's `rows`, or None; and the ratios
    it rests on. Winograd is weighed against the engine off Winograd: its own row where the
    engine took Winograd on the shape (ladder.WITHOUT_WINOGRAD), else the engine's."""
    by_shape = {}
    for row in _of_filter(rows, k):
        numbers = _shape_numbers(row["shape"])
        if row["version"] in (mode, "engine", WITHOUT_WINOGRAD):
            by_shape.setdefault((row["shape"], min(numbers["C"], numbers["O"])), {})[row["version"]] = row
    timed = {}  # (shape, channels): (Winograd's ms, the engine's off Winograd)
    for key, versions in by_shape.items():
        base = versions.get(WITHOUT_WINOGRAD, versions.get("engine"))
        if mode in versions and base and versions[mode]["ok"] and base["ok"]:
            timed[key] = versions[mode]["ms"], base["ms"]

    def total(threshold):  # the shapes' times added up, with Winograd from `threshold` channels
        return sum(winograd if threshold is not None and channels >= threshold else base
                   for (_, channels), (winograd, base) in timed.items())

    # of equal totals the larger threshold: fewer layers on Winograd
    threshold = min(sorted({channels for _, channels in timed}, reverse=True), key=total, default=None)
    if threshold is not None and total(threshold) >= (1 - MARGIN) * total(None):
        threshold = None
    ratios = {key: winograd / base for key, (winograd, base) in timed.items()}
    return threshold, ratios


def _paired(rows, versions):
    """{(shape, its smaller channel count): {version: row}} of the `rows` of `versions`, and
    the pairs of the shapes that have a row of each."""
    pairs = {}
    for row in rows:
        if row["version"] in versions:
            numbers = _shape_numbers(row["shape"])
            pairs.setdefault((row["shape"], min(numbers["C"], numbers["O"])), {})[row["version"]] = row
    return pairs, {key: pair for key, pair in pairs.items() if len(pair) == len(versions)}


def _ratios(pairs, numerator, denominator):
    return f"{numerator}'s time over {denominator}'s: " + ", ".join(
        f"{shape} {pair[numerator]['ms'] / pair[denominator]['ms']:.2f}"
        for (shape, _), pair in sorted(pairs.items(), key=lambda item: item[0][1]))


def _tile_fused(rows, unfused, fused, now):
    """(whether a direction's Winograd of the chosen tile runs fused, the evidence) from its
    ladder's `rows` of the tile's `unfused` and `fused` modes: the other way than `now` where
    the shapes both ran take less time added up that way by the margin, and fused only
    where every fused row validated."""
    _, both = _paired(rows, (unfused, fused))
    if not both:
        return now, "no shape timed both: kept"
    if not all(pair[fused]["ok"] for pair in both.values()):
        return False, f"{fused} gave a wrong result on the card (the ladder's table): not taken"
    total = {way: sum(pair[fused if way else unfused]["ms"] for pair in both.values()) for way in (False, True)}
    return (not now if total[not now] < (1 - MARGIN) * total[now] else now), _ratios(both, fused, unfused)


def _fused_winograd(rows, tile_mode, bound_now):
    """(the channel bound up to which a direction's Winograd runs F(2x2) fused, the rows of
    the Winograd it then runs on each shape, the evidence) from its ladder's `rows`: the
    bound (or None) under which the shapes both F(2x2) fused and `tile_mode` (the chosen
    tile's as the engine runs it, fused or not) ran take the least time added up, F(2x2)
    fused up to the bound and the tile past it, taken where it beats the current bound's
    total by the margin and every fused row validated."""
    fused, unfused = FUSED_MODES[2], tile_mode
    pairs, both = _paired(rows, (fused, unfused))

    def runs(bound):  # the row of the Winograd each shape runs under `bound`
        modes = {key: fused if bound is not None and key[1] <= bound else unfused for key in pairs}
        return {key: pair[modes[key]] for key, pair in pairs.items() if modes[key] in pair}

    def total(bound):
        return sum(row["ms"] for key, row in runs(bound).items() if key in both)

    def chosen(bound, text):
        return bound, [dict(row, version=CHOSEN_WINOGRAD) for row in runs(bound).values()], text

    if not both:
        return chosen(bound_now, "no shape timed both: kept")
    if not all(pair[fused]["ok"] for pair in both.values()):
        return chosen(None, f"{fused} gave a wrong result on the card (the ladder's table): not taken")
    # of equal totals the smaller bound: fewer layers switched
    best = min([None] + sorted({channels for _, channels in both}), key=total)
    if total(best) >= (1 - MARGIN) * total(bound_now):
        best = bound_now
    return chosen(best, _ratios(both, fused, unfused))


# The unfused and the fused mode of each tile.
MODES = {m: mode for mode, m in WINOGRAD_TILES.items()}
FUSED_MODES = {m: mode for mode, m in FUSED_WINOGRAD_TILES.items()}
# The rows of the Winograd the engine runs on each shape (the chosen tile's, fused or not, or
# F(2x2) fused), as choose relabels them to weigh the channel thresholds.
CHOSEN_WINOGRAD = "the chosen winograd"


def choose(ladders, now=None, batch64=None):
    """(choices, evidence) from `ladders` ({family: rows}, as `ladder --json` writes them):
    every constant's value by the rule above, the current one where its ladder is missing;
    evidence: {constant: text}. `batch64` ({direction: rows}: batch64_rows): more shapes,
    the targets' layers at the targets' batch, for fusing the Winograd tile and F(2x2)."""
    now = now or current()
    choices, evidence = dict(now), {}

    def decide(constant, rows, current_label, candidates, group):
        """The label chosen for `constant` among `candidates`, with its evidence written."""
        if not rows:
            evidence[constant] = "no ladder rows: kept"
            return current_label
        label, median, groups, current_failed = _pick(rows, current_label, candidates, group)
        if current_failed:
            evidence[constant] = "kept, but it gave a wrong result on the card (the ladder's table): not switched past"
        else:
            evidence[constant] = (f"kept ({groups} shapes timed)" if label == current_label else
                                  f"{label}: median time {median:.2f} of the current one's over {groups} shapes")
        return label

    choices["gemm.ENGINE_TILED"] = decide("gemm.ENGINE_TILED", _gemm_rows(ladders.get("gemm", [])),
                                          now["gemm.ENGINE_TILED"],
                                          {v: f"sgemm_{v}" for v in CONSTANTS["gemm.ENGINE_TILED"]},
                                          lambda row: (row["case"], row["shape"]))
    # the wide rung against v9's split products (what the engine's split ENGINE_TILED stands
    # for: on fc6 at batch 64 the H200 ran it in 0.715 ms, v9's in 0.652)
    choices["gemm.ENGINE_WIDE"] = decide("gemm.ENGINE_WIDE", [
        row for row in ladders.get("gemm", []) if SKINNY_ROWS < int(row["shape"].split("x")[0]) <= WIDE_ROWS],
        now["gemm.ENGINE_WIDE"], {False: "sgemm_splitk", True: "sgemm_wide"}, lambda row: (row["case"], row["shape"]))
    implicit = dict(now["conv2d.ENGINE_IMPLICIT"])
    for direction, versions in _module("conv2d").IMPLICIT_VERSIONS.items():
        engine = implicit[direction]
        implicit[direction] = decide(f"conv2d.ENGINE_IMPLICIT[{direction}]",
                                     _off_winograd(ladders.get(f"conv_{direction}", [])), engine,
                                     {v: ("engine" if v == engine else f"engine {v}") for v in versions},
                                     lambda row: row["shape"])
    choices["conv2d.ENGINE_IMPLICIT"] = implicit
    for direction in ("forward", "backward_data"):  # compared where the ladder has both rows
        constant = f"conv2d.ENGINE_FEW_CHANNELS_{direction.upper()}"
        few = now[constant]
        choices[constant] = decide(constant, ladders.get(f"conv_{direction}", []), few,
                                   {v: ("engine" if v == few else f"engine {v}") for v in CONSTANTS[constant]},
                                   lambda row: row["shape"])
    conv = {direction: _of_filter(ladders.get(f"conv_{direction}", []), 3) for direction in implicit}
    tile = choices["conv2d.ENGINE_WINOGRAD_TILE"] = decide(
        "conv2d.ENGINE_WINOGRAD_TILE", [row for rows in conv.values() for row in rows],
        now["conv2d.ENGINE_WINOGRAD_TILE"], MODES, lambda row: (row["case"], row["shape"]))
    tile_fused = dict(now["conv2d.ENGINE_WINOGRAD_TILE_FUSED"])
    fused = dict(now["conv2d.ENGINE_WINOGRAD_FUSED"])
    winograd_rows = {direction: [dict(row, version=CHOSEN_WINOGRAD) for row in rows if row["version"] == MODES[tile]]
                     for direction, rows in conv.items()}
    for direction in fused:  # (F(2x2)'s fusing is the bound's alone: fused up to any channel count)
        rows = conv[direction] + _validated(conv[direction], (batch64 or {}).get(direction, []))
        tile_fused[direction], evidence[f"conv2d.ENGINE_WINOGRAD_TILE_FUSED[{direction}]"] = _tile_fused(
            rows, MODES[tile], FUSED_MODES[tile], tile_fused[direction]) if tile != 2 else (
            False, "F(2x2): fused up to ENGINE_WINOGRAD_FUSED's bound instead")
        fused[direction], winograd_rows[direction], evidence[f"conv2d.ENGINE_WINOGRAD_FUSED[{direction}]"] = \
            _fused_winograd(rows, FUSED_MODES[tile] if tile_fused[direction] else MODES[tile], fused[direction])
    choices["conv2d.ENGINE_WINOGRAD_TILE_FUSED"] = tile_fused
    choices["conv2d.ENGINE_WINOGRAD_FUSED"] = fused
    thresholds = dict(now["conv2d.ENGINE_WINOGRAD_CHANNELS"])
    for direction, rows in conv.items():
        constant = f"conv2d.ENGINE_WINOGRAD_CHANNELS[{direction}]"
        if not rows:
            evidence[constant] = "no ladder rows: kept"
            continue
        mode = FUSED_MODES[tile] if tile_fused.get(direction) else MODES[tile]
        if fused.get(direction) is not None:
            mode += f" ({FUSED_MODES[2]} up to {fused[direction]})"
        thresholds[direction], ratios = _winograd_threshold(rows + winograd_rows[direction], CHOSEN_WINOGRAD)
        evidence[constant] = _over_the_engine(mode, ratios)
    choices["conv2d.ENGINE_WINOGRAD_CHANNELS"] = thresholds
    choices["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS"] = _winograd_5x5_thresholds(ladders, now, evidence)
    pooled = _added(ladders.get("maxpool", []), lambda row: next(
        f"maxpool {v}" for v, suffix in MAXPOOL_SUFFIXES.items() if row["version"] == f"maxpool_{row['case']}{suffix}"))
    choices["maxpool.ENGINE_VERSION"] = decide("maxpool.ENGINE_VERSION", pooled, now["maxpool.ENGINE_VERSION"],
                                               {v: f"maxpool {v}" for v in MAXPOOL_SUFFIXES}, lambda row: row["shape"])
    for module in ("batchnorm", "pad", "avgpool", "lrn"):  # the element-wise ladder's rungs, each row naming its own
        constant = f"{module}.ENGINE_VERSION"
        rows = _added([row for row in ladders.get("elementwise", []) if row.get("rung", "").startswith(module + " ")],
                      lambda row: row["rung"])
        choices[constant] = decide(constant, rows, now[constant], {v: f"{module} {v}" for v in CONSTANTS[constant]},
                                   lambda row: row["shape"])
    depthwise = ladders.get("depthwise", [])
    for constant, case, stride in (("depthwise.ENGINE_FORWARD", "forward", None),
                                   ("depthwise.ENGINE_UNIT_STRIDE_BACKWARD_DATA", "backward_data", 1),
                                   ("depthwise.ENGINE_STRIDED_BACKWARD_DATA", "backward_data", 2),
                                   ("depthwise.ENGINE_BACKWARD_WEIGHTS", "backward_weights", None)):
        rows = [row for row in depthwise if row["case"] == case
                and (stride is None or _shape_numbers(row["shape"])["s"] == stride)]
        choices[constant] = decide(constant, rows, now[constant], {v: v for v in CONSTANTS[constant]},
                                   lambda row: row["shape"])
    return choices, evidence


def _over_the_engine(winograd, ratios):
    """The evidence of a channel threshold: `winograd`'s time over the engine's off Winograd
    on each shape (`ratios`, from _winograd_threshold), by channels."""
    return f"{winograd}'s time over the engine's off Winograd: " + (", ".join(
        f"{shape} {ratio:.2f}" for (shape, _), ratio in sorted(ratios.items(), key=lambda item: item[0][1]))
        or "no shape timed both")


def _winograd_5x5_thresholds(ladders, now, evidence):
    """conv2d.ENGINE_WINOGRAD_5X5_CHANNELS by the rule in the module's docstring, with its
    evidence written: F(2x2, 5x5) is the `winograd` mode's on 5x5 filters."""
    thresholds = dict(now["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS"])
    for direction in thresholds:
        constant = f"conv2d.ENGINE_WINOGRAD_5X5_CHANNELS[{direction}]"
        rows = _of_filter(ladders.get(f"conv_{direction}", []), 5)
        if not rows:
            evidence[constant] = "no 5x5 ladder rows: kept"
            continue
        thresholds[direction], ratios = _winograd_threshold(rows, MODES[2], k=5)
        evidence[constant] = _over_the_engine("F(2x2, 5x5)", ratios)
    return thresholds


def _added(rows, label):
    """One row per rung and shape, its directions' times added (a rung's forward and
    backward, its maps and reductions: what a pass runs), validated where each of them did;
    label(row) names the rung. Only the rungs timed in as many directions as the most on
    that shape."""
    entries = {}
    for row in rows:
        entry = entries.setdefault((label(row), row["shape"]),
                                   {"version": label(row), "shape": row["shape"], "ok": True, "ms": 0.0, "parts": 0})
        entry["ok"] &= row["ok"]
        entry["ms"] += row["ms"]
        entry["parts"] += 1
    most = {}
    for entry in entries.values():
        most[entry["shape"]] = max(most.get(entry["shape"], 0), entry["parts"])
    return [entry for entry in entries.values() if entry["parts"] == most[entry["shape"]]]


def read_ladders(folder):
    """{family: rows} of every ladder_<family>.json in `folder`, and the families whose
    ladder was cut off before its last row (the rows it finished are chosen from: each
    comparison pairs rows of one shape)."""
    ladders, unfinished = {}, []
    for path in sorted(glob.glob(os.path.join(folder, "ladder_*.json"))):
        with open(path) as handle:
            ladder = json.load(handle)
        family = os.path.basename(path)[len("ladder_"):-len(".json")]
        ladders[family] = ladder["rows"]
        if not ladder.get("finished", True):
            unfinished.append(family)
    return ladders, unfinished


def _validated(ladder_rows, rows):
    """The `rows` (batch64_rows') of the versions that have rows in `ladder_rows`, all of
    them validated, marked so."""
    ladder = {}
    for row in ladder_rows:
        ladder[row["version"]] = ladder.get(row["version"], True) and row["ok"]
    return [dict(row, ok=True) for row in rows if ladder.get(row["version"])]


# A bench/gpu_kernels.py row's direction, as the ladders name it.
GPU_KERNELS_DIRECTIONS = {"forward": "forward", "backward-data": "backward_data"}


def batch64_rows(path):
    """{direction: rows} of the Winograd modes' rows of VGG-16's layers at batch 64 in a
    bench/gpu_kernels.py JSON (its "backward-data (winograd_fused4)" and the like), as ladder
    rows: the issue's targets are at batch 64, the ladders time batch 16, and fusing gains
    most where the batch is large. gpu_kernels.py does not validate its rows: choose takes
    those of the modes whose rows in the same direction's ladder all validated (_validated)."""
    try:
        with open(path) as handle:
            rows = json.load(handle)["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise KernelError(f"engine choices: cannot read the batch-64 rows of {path}: {error}") from None
    modes, by_direction = set(MODES.values()) | set(FUSED_MODES.values()), {}
    for row in rows:
        direction, _, mode = row.get("direction", "").removesuffix(")").partition(" (")
        direction = GPU_KERNELS_DIRECTIONS.get(direction)
        if row.get("group") == "conv" and row.get("shape", "").startswith("vgg16 N64 ") and direction and mode in modes:
            by_direction.setdefault(direction, []).append({"version": mode, "case": f"conv_{direction}",
                                                           "shape": row["shape"], "ms": row["ours_ms"]})
    return by_direction


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepinside.kernels.choices", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="where a GPU run's ladders wrote ladder_<family>.json")
    parser.add_argument("--batch64", metavar="GPU_KERNELS_JSON",
                        help="also weigh the Winograd modes' batch-64 VGG-16 rows of this bench/gpu_kernels.py JSON "
                             "(an earlier run's) in fusing the Winograd tile and F(2x2)")
    parser.add_argument("--write", metavar="CHOICES_JSON",
                        help="instead: write the choices of this file (a run's engine_choices.json) into the "
                             "modules' source")
    arguments = parser.parse_args(argv)
    if (arguments.folder is None) == (arguments.write is None):
        parser.error("give a folder of ladders to choose from, or --write CHOICES_JSON")
    if arguments.write:
        try:
            changed = write(load(arguments.write))
        except (KernelError, OSError) as error:
            print(f"kernels.choices: {error}", file=sys.stderr)
            return 1
        print("\n".join(changed) if changed else "every constant already holds its chosen value")
        return 0
    ladders, unfinished = read_ladders(arguments.folder)
    if not ladders:
        print(f"kernels.choices: no ladder_*.json in {arguments.folder}: nothing to choose from", file=sys.stderr)
        return 1
    now = current()
    try:
        batch64 = batch64_rows(arguments.batch64) if arguments.batch64 else None
    except KernelError as error:
        print(f"kernels.choices: {error}", file=sys.stderr)
        return 1
    choices, evidence = choose(ladders, now, batch64)
    print(f"from the ladders of {', '.join(sorted(ladders))}"
          + (f" and {sum(map(len, batch64.values()))} batch-64 rows of {arguments.batch64}" if batch64 else "")
          + "".join(f"; {family} cut off after {len(ladders[family])} rows" for family in unfinished) + ":")
    print("| constant | now | chosen | evidence |\n| --- | --- | --- | --- |")
    for constant, text in evidence.items():
        name, _, direction = constant.partition("[")
        value = choices[name][direction.rstrip("]")] if direction else choices[name]
        before = now[name][direction.rstrip("]")] if direction else now[name]
        print(f"| {constant} | {before} | {value} | {text} |")
    with open(os.path.join(arguments.folder, "engine_choices.json"), "w") as handle:
        json.dump(choices, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
