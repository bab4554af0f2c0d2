"""Choosing the engine's rungs from a GPU run's ladders (kernels/choices.py): the rule on
made-up ladder rows, the constants set and checked, and the plumbing end to end on the
emulator's ladder."""
import json
import os
import subprocess
import sys

import pytest

from deepinside.kernels import choices
from deepinside.kernels.launch import KernelError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restored():
    """The engine's constants as they were before the test."""
    before = choices.current()
    yield before
    choices.apply(before)


# The constants as they stood before the first H200 run chose them: the made-up ladders
# below are read against these, whatever the modules hold now.
BEFORE_ANY_RUN = {"gemm.ENGINE_TILED": "pipelined",
                  "conv2d.ENGINE_IMPLICIT": {"forward": "8x8", "backward_data": "8x8", "backward_weights": "splitk"},
                  "conv2d.ENGINE_WINOGRAD_TILE": 2,
                  "conv2d.ENGINE_WINOGRAD_CHANNELS": {"forward": None, "backward_data": None, "backward_weights": None},
                  "conv2d.ENGINE_FEW_CHANNELS_FORWARD": "implicit", "conv2d.ENGINE_FEW_CHANNELS_BACKWARD_DATA": "columns",
                  "maxpool.ENGINE_VERSION": "v1"}


@pytest.fixture
def first(restored):
    return dict(restored, **BEFORE_ANY_RUN)


def row(version, ms, shape="4096x4096x4096", case="NN", ok=True):
    return {"version": version, "case": case, "shape": shape, "ok": ok, "ms": ms}


def gemm_rows(pipelined, wide, wide_ok=True):
    shapes = ["4096x4096x4096", "64x4096x25088", "1x4096x25088"]
    rows = []
    for case in ("NN", "TN", "NT"):
        for shape, a, b in zip(shapes, pipelined, wide):
            rows += [row("sgemm_pipelined", a, shape, case), row("sgemm_8x16", b, shape, case, wide_ok)]
    return rows


def test_a_rung_faster_in_the_median_replaces_the_current_one(first):
    # 8x16 takes 0.8 and 0.9 of pipelined's time on the two products of more than 8 rows;
    # on the 1-row one (the skinny rung's) it is slower, which does not count
    ladders = {"gemm": gemm_rows([10.0, 1.0, 0.1], [8.0, 0.9, 0.5])}
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["gemm.ENGINE_TILED"] == "8x16"
    assert evidence["gemm.ENGINE_TILED"] == "8x16: median time 0.85 of the current one's over 6 shapes"


def test_the_wide_rung_is_weighed_on_products_of_9_to_64_rows_alone(first):
    """gemm.ENGINE_WIDE from the rows of 9 to 64 rows (fc6 at batch 64, both cases: 0.60 of
    v9's split time), not the square or the skinny product's (where the wide rung is slower);
    not where one of its rows failed."""
    def rows(wide_ok=True):
        made = []
        for case in ("NN", "NT"):
            made += [row("sgemm_splitk", 0.65, "64x4096x25088", case), row("sgemm_wide", 0.39, "64x4096x25088", case,
                                                                            wide_ok),
                     row("sgemm_splitk", 1.0, "4096x4096x4096", case), row("sgemm_wide", 2.0, "4096x4096x4096", case),
                     row("sgemm_splitk", 0.1, "4x4096x25088", case), row("sgemm_wide", 0.3, "4x4096x25088", case)]
        return made
    chosen, evidence = choices.choose({"gemm": rows()}, dict(first, **{"gemm.ENGINE_WIDE": False}))
    assert chosen["gemm.ENGINE_WIDE"] is True
    assert evidence["gemm.ENGINE_WIDE"] == "True: median time 0.60 of the current one's over 2 shapes"
    chosen, evidence = choices.choose({"gemm": rows(wide_ok=False)}, dict(first, **{"gemm.ENGINE_WIDE": False}))
    assert chosen["gemm.ENGINE_WIDE"] is False


def test_a_rung_within_the_margin_or_with_a_failed_row_is_not_chosen(first):
    close = {"gemm": gemm_rows([10.0, 1.0, 0.1], [9.8, 0.99, 0.1])}  # 2% and 1% faster: noise
    assert choices.choose(close, first)[0]["gemm.ENGINE_TILED"] == "pipelined"
    failed = {"gemm": gemm_rows([10.0, 1.0, 0.1], [5.0, 0.5, 0.05])}
    failed["gemm"][1]["ok"] = False  # one wrong result: never the engine's
    assert choices.choose(failed, first)[0]["gemm.ENGINE_TILED"] == "pipelined"
    wrong_engine = {"gemm": gemm_rows([10.0, 1.0, 0.1], [5.0, 0.5, 0.05])}
    wrong_engine["gemm"][0]["ok"] = False  # the current rung wrong on the card: a bug to fix, not to switch past
    chosen, evidence = choices.choose(wrong_engine, first)
    assert chosen["gemm.ENGINE_TILED"] == "pipelined" and "gave a wrong result" in evidence["gemm.ENGINE_TILED"]


def test_each_convolution_direction_and_winograd_are_chosen_apart(first):
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1", "N16 C512 14x14 O512 k3 s1 p1"]
    times = {"engine": (10.0, 10.0, 2.0), "engine 8x16": (9.0, 8.0, 1.9), "winograd": (12.0, 6.0, 1.0),
             "implicit": (11.0, 11.0, 2.1)}
    forward = [row(version, t, shape, "conv_forward") for version, ts in times.items() for shape, t in zip(shapes, ts)]
    weights = [row(version, t, shape, "conv_backward_weights") for version, ts in
               {"engine": (30.0, 14.0, 4.0), "engine two_blocks": (31.0, 15.0, 3.0)}.items()
               for shape, t in zip(shapes, ts)]
    chosen, evidence = choices.choose({"conv_forward": forward, "conv_backward_weights": weights}, first)
    assert chosen["conv2d.ENGINE_IMPLICIT"] == dict(first["conv2d.ENGINE_IMPLICIT"], forward="8x16")
    assert evidence["conv2d.ENGINE_IMPLICIT[backward_weights]"] == "kept (3 shapes timed)"  # median 1.03
    assert evidence["conv2d.ENGINE_IMPLICIT[backward_data]"] == "no ladder rows: kept"
    # F(2x2, 3x3) is faster from 256 channels up (0.6 and 0.5 of the engine's time), slower at 64
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"]["forward"] == 256
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE"] == 2  # no F(4x4, 3x3) rows
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"]["backward_weights"] is None  # no Winograd rows


def test_the_winograd_tile_then_each_direction_threshold(first):
    """F(4x4, 3x3) against F(2x2, 3x3) over every direction's rows (median 0.90 of the time:
    chosen), then each direction's threshold from F(4x4, 3x3)'s rows alone; where the engine
    already ran Winograd, against its row off Winograd."""
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1", "N16 C512 14x14 O512 k3 s1 p1"]
    forward = {"engine": (10.0, 10.0, 2.0), "winograd": (12.0, 6.0, 1.0), "winograd4": (11.0, 4.8, 0.9)}
    weights = {"engine": (30.0, 14.0, 4.0), "winograd": (20.0, 10.0, 5.0), "winograd4": (16.0, 9.0, 4.5)}
    ladders = {f"conv_{direction}": [row(version, t, shape, f"conv_{direction}") for version, ts in times.items()
                                     for shape, t in zip(shapes, ts)]
               for direction, times in (("forward", forward), ("backward_weights", weights))}
    # backward-data on one shape, where the engine took Winograd (its row is Winograd's time)
    ladders["conv_backward_data"] = [row(version, ms, shapes[1], "conv_backward_data") for version, ms in (
        ("engine", 5.0), ("engine without winograd", 10.0), ("winograd", 6.0), ("winograd4", 5.0))]
    ladders["conv_backward_data"].append(row("engine 8x16", 9.0, shapes[1], "conv_backward_data"))
    rgb = "N16 C3 224x224 O64 k3 s1 p1"  # the few-channel kernels against the column buffer: 0.40, 0.42
    ladders["conv_backward_data"] += [row("engine", 3.0, rgb, "conv_backward_data"),
                                      row("engine few_channels", 1.2, rgb, "conv_backward_data"),
                                      row("engine few_channels_async", 1.25, rgb, "conv_backward_data")]
    ladders["conv_forward"] += [row("engine", 1.0, rgb, "conv_forward"),  # the few-channel forward: 1.05, kept
                                row("engine few_channels", 1.05, rgb, "conv_forward")]
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_FEW_CHANNELS_FORWARD"] == "implicit"
    assert evidence["conv2d.ENGINE_FEW_CHANNELS_FORWARD"] == "kept (4 shapes timed)"  # the engine's rows
    # the implicit GEMM's 8 x 16 version (timed off Winograd) against the current one off
    # Winograd, 0.90: chosen (against the engine's Winograd time it would look 1.8 times slower)
    assert chosen["conv2d.ENGINE_IMPLICIT"]["backward_data"] == "8x16"
    assert chosen["conv2d.ENGINE_FEW_CHANNELS_BACKWARD_DATA"] == "few_channels"
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE"] == 4
    assert evidence["conv2d.ENGINE_WINOGRAD_TILE"] == "4: median time 0.90 of the current one's over 7 shapes"
    # forward: 1.10 at 64 channels, 0.48 at 256, 0.45 at 512: least in all from 256 (15.7 ms
    # against 16.7 from 64 and 22 without); the weight gradient 0.53, 0.64 and 1.12: slower at
    # 512 channels, but least in all from 64 (29.5 ms against 48 without); backward-data 0.50
    # of the engine off Winograd (1.00 of the engine's own row)
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"] == {"forward": 256, "backward_data": 256,
                                                         "backward_weights": 64}


def test_the_5x5_threshold_is_chosen_apart_from_the_3x3_choices(first):
    """A 5x5 stride-1 shape's rows weigh F(2x2, 5x5) (the `winograd` mode's row there)
    against the engine off Winograd, per direction, and nothing of the 3x3 choices: the
    tile stays F(4x4, 3x3) though `winograd` beats `winograd4` by far on the 5x5 shape."""
    three, five = "N16 C256 56x56 O256 k3 s1 p1", "N16 C64 27x27 O256 k5 s1 p2"
    ladders = {}
    for direction, engine, f25, off in (("forward", 10.0, 6.0, None),  # 0.60: from 64 channels
                                        ("backward_data", 10.0, 9.9, None),  # 0.99, within the margin: none
                                        ("backward_weights", 5.0, 5.0, 10.0)):  # the engine on it already: 0.50
        case = f"conv_{direction}"
        ladders[case] = [row("engine", 4.0, three, case), row("winograd", 3.0, three, case),
                         row("winograd4", 2.7, three, case), row("engine", engine, five, case),
                         row("winograd", f25, five, case), row("winograd4", engine, five, case)]
        if off:
            ladders[case].append(row("engine without winograd", off, five, case))
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS"] == {"forward": 64, "backward_data": None,
                                                             "backward_weights": 64}
    assert evidence["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS[forward]"] == (
        f"F(2x2, 5x5)'s time over the engine's off Winograd: {five} 0.60")
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE"] == 4
    assert evidence["conv2d.ENGINE_WINOGRAD_TILE"] == "4: median time 0.90 of the current one's over 3 shapes"
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"] == {"forward": 256, "backward_data": 256,
                                                         "backward_weights": 256}
    no_five = {case: [r for r in rows if r["shape"] == three] for case, rows in ladders.items()}
    chosen, evidence = choices.choose(no_five, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS"] == first["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS"]
    assert evidence["conv2d.ENGINE_WINOGRAD_5X5_CHANNELS[forward]"] == "no 5x5 ladder rows: kept"


def test_a_winograd_threshold_needs_the_total_to_beat_the_margin(first):
    """Winograd 2% faster in all (within the margin): no threshold; 10% faster in all though
    slower on the smallest shape: the threshold above it."""
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1"]

    def threshold(engine, winograd):
        rows = [row(version, t, shape, "conv_forward") for version, ts in (("engine", engine), ("winograd", winograd))
                for shape, t in zip(shapes, ts)]
        return choices.choose({"conv_forward": rows}, first)[0]["conv2d.ENGINE_WINOGRAD_CHANNELS"]["forward"]

    assert threshold((10.0, 10.0), (9.8, 9.8)) is None
    assert threshold((10.0, 10.0), (10.5, 8.0)) == 256
    assert threshold((10.0, 10.0), (9.5, 8.0)) == 64


def test_pools_add_both_directions_and_depthwise_splits_by_stride(first):
    pool = [row(f"maxpool_{case}{suffix}", ms, "N16 C64 224x224 k2 s2", case)
            for suffix, (forward, backward) in {"": (1.0, 3.0), "_planes": (0.9, 2.0), "_2x2": (0.5, 2.6)}.items()
            for case, ms in (("forward", forward), ("backward", backward))]
    unit, strided = "N64 C32 112x112 k3 s1 p1", "N64 C144 56x56 k5 s2 p2"
    depthwise = [row("depthwise_backward_data", 1.0, unit, "backward_data"),
                 row("depthwise_backward_data_tiled", 0.6, unit, "backward_data"),
                 row("depthwise_backward_data_rows", 0.5, unit, "backward_data"),
                 row("depthwise_backward_data", 2.0, strided, "backward_data"),
                 row("depthwise_backward_data_parity", 0.4, strided, "backward_data")]
    chosen, _ = choices.choose({"maxpool": pool, "depthwise": depthwise}, first)
    assert chosen["maxpool.ENGINE_VERSION"] == "v2"  # 2.9 against v3's 3.1 and v1's 4.0
    pairs = [row(f"maxpool_{case}_2x2_pairs", ms, "N16 C64 224x224 k2 s2", case)
             for case, ms in (("forward", 0.4), ("backward", 2.0))]
    assert choices.choose({"maxpool": pool + pairs}, first)[0]["maxpool.ENGINE_VERSION"] == "v4"  # 2.4
    assert chosen["depthwise.ENGINE_UNIT_STRIDE_BACKWARD_DATA"] == "depthwise_backward_data_rows"
    assert chosen["depthwise.ENGINE_STRIDED_BACKWARD_DATA"] == "depthwise_backward_data_parity"
    assert chosen["depthwise.ENGINE_FORWARD"] == first["depthwise.ENGINE_FORWARD"]  # no rows


def test_the_elementwise_rungs_are_chosen_on_their_directions_added(first):
    """batchnorm, pad and the global pool: each rung's rows (maps and reductions, forward
    and backward) added per shape; a rung with a wrong row, or timed in fewer directions
    than the others, is not taken."""
    def rows(module, version, times, shape="N64 C144 56x56", ok=True):
        return [dict(row(f"{module}_{version}_{i}", ms, shape, f"direction {i}", ok), rung=f"{module} {version}")
                for i, ms in enumerate(times)]

    now = dict(first, **{"batchnorm.ENGINE_VERSION": "v1", "pad.ENGINE_VERSION": "v2", "avgpool.ENGINE_VERSION": "v1"})
    ladder = (rows("batchnorm", "v1", [1.0, 1.0, 1.0, 3.0, 3.0]) + rows("batchnorm", "v2", [0.9, 0.9, 0.9, 1.0, 1.0])
              + rows("pad", "v1", [1.0, 1.0]) + rows("pad", "v2", [1.2, 1.0])
              + rows("avgpool", "v1", [1.0, 1.0]) + rows("avgpool", "v2", [0.1, 0.1], ok=False)
              + [row("add_forward", 0.1, "N64 C144 56x56", "residual add")])  # no rung: no choice
    chosen, evidence = choices.choose({"elementwise": ladder}, now)
    assert (chosen["batchnorm.ENGINE_VERSION"], chosen["pad.ENGINE_VERSION"], chosen["avgpool.ENGINE_VERSION"]) == (
        "v2", "v1", "v1")
    assert "0.52 of the current one's" in evidence["batchnorm.ENGINE_VERSION"]  # 4.7 against 9.0
    without_statistics = [r for r in ladder if r["version"] != "batchnorm_v2_3"]
    assert choices.choose({"elementwise": without_statistics}, now)[0]["batchnorm.ENGINE_VERSION"] == "v1"


def test_choices_are_checked_then_set_together(restored):
    with pytest.raises(KernelError, match="gemm.ENGINE_TILED must be one of pipelined, 8x16, async, 8x16_async, got .v12."):
        choices.apply({"maxpool.ENGINE_VERSION": "v3", "gemm.ENGINE_TILED": "v12"})
    assert choices.current() == restored  # nothing was set
    with pytest.raises(KernelError, match="no constant 'gemm.ENGINE_FAST'"):
        choices.apply({"gemm.ENGINE_FAST": "8x16"})
    with pytest.raises(KernelError, match="ENGINE_IMPLICIT must map"):
        choices.apply({"conv2d.ENGINE_IMPLICIT": {"forward": "8x16"}})
    with pytest.raises(KernelError, match="ENGINE_WINOGRAD_CHANNELS must map"):
        choices.apply({"conv2d.ENGINE_WINOGRAD_CHANNELS": 256})  # one per direction
    thresholds = {"forward": 256, "backward_data": None, "backward_weights": 128}
    choices.apply({"maxpool.ENGINE_VERSION": "v3", "conv2d.ENGINE_WINOGRAD_CHANNELS": thresholds,
                   "conv2d.ENGINE_WINOGRAD_TILE": 4})
    from deepinside.kernels import conv2d, maxpool
    assert (maxpool.ENGINE_VERSION, conv2d.ENGINE_WINOGRAD_CHANNELS, conv2d.ENGINE_WINOGRAD_TILE) == (
        "v3", thresholds, 4)


def test_emulator_ladder_to_choices_to_a_benchmark_run(tmp_path, restored):
    """The script's chain on the emulator: a ladder's JSON, the choices made from it (whatever
    the emulator's times say), and gpu_kernels.py refusing a file of wrong choices in one line."""
    environment = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests"))
    ladder = [sys.executable, "-m", "deepinside.kernels.ladder", "gemm", "--emulator", "--json",
              str(tmp_path / "ladder_gemm.json")]
    assert subprocess.run(ladder, capture_output=True, text=True).returncode == 0
    assert json.loads((tmp_path / "ladder_gemm.json").read_text())["rows"]
    result = subprocess.run([sys.executable, "-m", "deepinside.kernels.choices", str(tmp_path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert f"| gemm.ENGINE_TILED | {restored['gemm.ENGINE_TILED']} |" in result.stdout
    choices.apply(choices.load(str(tmp_path / "engine_choices.json")))  # a valid set of choices
    (tmp_path / "bad.json").write_text(json.dumps({"maxpool.ENGINE_VERSION": "v9"}))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu_kernels.py"), str(tmp_path / "out"),
                             "--emulator", "--choices", str(tmp_path / "bad.json")], capture_output=True, text=True,
                            env=environment)
    assert result.returncode == 1
    assert result.stderr.strip() == ("bench/gpu_kernels.py: engine choices: maxpool.ENGINE_VERSION must be one of "
                                     "v1, v2, v3, v4, got 'v9'")
    empty = subprocess.run([sys.executable, "-m", "deepinside.kernels.choices", str(tmp_path / "out")],
                           capture_output=True, text=True)
    assert empty.returncode == 1 and "no ladder_*.json" in empty.stderr


def test_a_ladder_cut_off_leaves_the_rows_it_finished_to_choose_from(tmp_path, monkeypatch, capsys, restored):
    """The GPU script kills a ladder at its time limit: the JSON it rewrote at every row
    keeps what was done, marked unfinished, and kernels.choices chooses from those rows
    and says the ladder was cut off. A ladder that ends marks its file finished."""
    from deepinside.kernels import ladder
    validated, finished_rows = ladder._validated_row, []

    def cut_off_after_three(*arguments, **options):
        if len(finished_rows) == 3:
            raise KeyboardInterrupt  # what the script's timeout does to the process
        finished_rows.append(validated(*arguments, **options))
        return finished_rows[-1]
    monkeypatch.setattr(ladder, "_validated_row", cut_off_after_three)
    path = tmp_path / "ladder_conv_forward.json"
    with pytest.raises(KeyboardInterrupt):
        ladder.main(["conv_forward", "--emulator", "--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["finished"] is False and saved["rows"] == finished_rows and len(finished_rows) == 3
    assert choices.main([str(tmp_path)]) == 0
    assert "from the ladders of conv_forward; conv_forward cut off after 3 rows:" in capsys.readouterr().out
    monkeypatch.setattr(ladder, "_validated_row", validated)
    assert ladder.main(["relu", "--emulator", "--json", str(tmp_path / "ladder_relu.json")]) == 0
    assert json.loads((tmp_path / "ladder_relu.json").read_text())["finished"] is True


def _copies(folder):
    """The modules that hold the constants, copied into `folder` (choices.write edits source)."""
    import shutil
    folder.mkdir(exist_ok=True)
    for module in {constant.split(".")[0] for constant in choices.CONSTANTS}:
        shutil.copy(os.path.join(ROOT, "kernels", f"{module}.py"), folder)
    return folder


def _assigned(path, name):
    import ast
    tree = ast.parse(path.read_text())
    (value,) = [node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == name]
    return ast.literal_eval(value)


def test_choices_are_written_into_the_source_and_nothing_else_moves(tmp_path, restored):
    folder = _copies(tmp_path)
    before = {name: (folder / f"{name}.py").read_text().splitlines() for name in ("gemm", "conv2d", "maxpool")}
    implicit = dict(restored["conv2d.ENGINE_IMPLICIT"], forward="async")
    channels = dict(restored["conv2d.ENGINE_WINOGRAD_CHANNELS"],
                    backward_data=128 if restored["conv2d.ENGINE_WINOGRAD_CHANNELS"]["backward_data"] != 128 else 64)
    tile = 4 if restored["conv2d.ENGINE_WINOGRAD_TILE"] == 2 else 2
    changed = choices.write({"conv2d.ENGINE_IMPLICIT": implicit, "conv2d.ENGINE_WINOGRAD_CHANNELS": channels,
                             "conv2d.ENGINE_WINOGRAD_TILE": tile, "maxpool.ENGINE_VERSION": "v3",
                             "gemm.ENGINE_TILED": restored["gemm.ENGINE_TILED"]}, str(folder))
    assert _assigned(folder / "conv2d.py", "ENGINE_IMPLICIT") == implicit
    assert _assigned(folder / "conv2d.py", "ENGINE_WINOGRAD_CHANNELS") == channels
    assert _assigned(folder / "conv2d.py", "ENGINE_WINOGRAD_TILE") == tile
    assert _assigned(folder / "maxpool.py", "ENGINE_VERSION") == "v3"
    assert len(changed) == 4 - (restored["maxpool.ENGINE_VERSION"] == "v3") and not any("gemm" in c for c in changed)
    assert (folder / "gemm.py").read_text().splitlines() == before["gemm"]  # its value unchanged: not touched
    for name in ("conv2d", "maxpool"):  # only the constants' lines differ, one for one
        after = (folder / f"{name}.py").read_text().splitlines()
        differing = [old for old, new in zip(before[name], after) if old != new]
        assert len(after) == len(before[name]) and all(line.startswith("ENGINE_") for line in differing)
    written = ('ENGINE_IMPLICIT = {"forward": "async", '
               f'"backward_data": "{implicit["backward_data"]}", "backward_weights": "{implicit["backward_weights"]}"}}')
    assert written in (folder / "conv2d.py").read_text().splitlines()  # as the file writes its values


def test_written_choices_are_checked_before_any_file_changes(tmp_path):
    folder = _copies(tmp_path)
    texts = {path: path.read_text() for path in folder.iterdir()}
    with pytest.raises(KernelError, match="maxpool.ENGINE_VERSION must be one of"):
        choices.write({"gemm.ENGINE_TILED": "async", "maxpool.ENGINE_VERSION": "v9"}, str(folder))
    (folder / "maxpool.py").write_text(texts[folder / "maxpool.py"].replace("ENGINE_VERSION =", "VERSION ="))
    with pytest.raises(KernelError, match="assigns no ENGINE_VERSION"):
        choices.write({"gemm.ENGINE_TILED": "async", "maxpool.ENGINE_VERSION": "v3"}, str(folder))
    assert (folder / "gemm.py").read_text() == texts[folder / "gemm.py"]


def test_the_command_writes_a_runs_choices_file(tmp_path, monkeypatch, capsys, restored):
    folder = _copies(tmp_path / "kernels")
    monkeypatch.setattr(choices, "SOURCE_FOLDER", str(folder))
    other = next(v for v in choices.CONSTANTS["depthwise.ENGINE_FORWARD"] if v != restored["depthwise.ENGINE_FORWARD"])
    (tmp_path / "engine_choices.json").write_text(json.dumps(dict(restored, **{"depthwise.ENGINE_FORWARD": other})))
    assert choices.main(["--write", str(tmp_path / "engine_choices.json")]) == 0
    assert _assigned(folder / "depthwise.py", "ENGINE_FORWARD") == other
    assert capsys.readouterr().out == f'depthwise.ENGINE_FORWARD: "{restored["depthwise.ENGINE_FORWARD"]}" -> "{other}"\n'
    assert choices.main(["--write", str(tmp_path / "engine_choices.json")]) == 0
    assert "already holds" in capsys.readouterr().out
    assert choices.main(["--write", str(tmp_path / "none.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_winograd_runs_fused_up_to_the_channel_count_of_least_total_time(first):
    """F(2x2, 3x3) fused against the chosen tile's unfused Winograd ("winograd": the tile
    stays 2 here), direction by direction: fused on the layers of at most the channel count
    under which the ladder's shapes take the least time added up (backward-data: 64, where
    it is 0.45 of the unfused time, not at 256, 1.03), nowhere where that beats no fused
    bound by less than the margin (forward: 13.9 against 14.0 ms) or where a fused row gave
    a wrong result; the direction's channel threshold is then weighed on the rows of the
    Winograd each shape runs (from 64 channels, where the unfused rows alone put it at
    256)."""
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1"]

    def ladder(case, unfused, fused, fused_ok=True):
        return [row(version, ms, shape, case, ok) for shape, engine, u, f in zip(shapes, (10.0, 10.0), unfused, fused)
                for version, ms, ok in (("engine", engine, True), ("winograd", u, True),
                                        ("winograd_fused", f, fused_ok))]

    ladders = {"conv_forward": ladder("conv_forward", (8.0, 6.0), (8.0, 5.9)),
               "conv_backward_data": ladder("conv_backward_data", (11.0, 6.0), (5.0, 6.2))}
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE"] == 2
    assert chosen["conv2d.ENGINE_WINOGRAD_FUSED"] == {"forward": None, "backward_data": 64}
    assert evidence["conv2d.ENGINE_WINOGRAD_FUSED[backward_data]"] == (
        f"winograd_fused's time over winograd's: {shapes[0]} 0.45, {shapes[1]} 1.03")
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"]["backward_data"] == 64
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"]["forward"] == 64  # (8 + 6 against 10 + 6 from 256)
    ladders["conv_backward_data"] = ladder("conv_backward_data", (11.0, 6.0), (5.0, 5.0))
    assert choices.choose(ladders, first)[0]["conv2d.ENGINE_WINOGRAD_FUSED"]["backward_data"] == 256
    ladders["conv_backward_data"] = ladder("conv_backward_data", (11.0, 6.0), (5.0, 6.2), fused_ok=False)
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_FUSED"]["backward_data"] is None
    assert "gave a wrong result" in evidence["conv2d.ENGINE_WINOGRAD_FUSED[backward_data]"]
    assert chosen["conv2d.ENGINE_WINOGRAD_CHANNELS"]["backward_data"] == 256


def test_the_chosen_tile_runs_fused_where_that_takes_less_time_added_up(first):
    """ENGINE_WINOGRAD_TILE_FUSED, direction by direction, on the tile chosen from the
    unfused rows (F(4x4, 3x3) here): fused where the shapes both ran take less time added up
    fused, by the margin (forward: 9.0 against 12.0 ms, although fused is slower on one
    shape), unfused where not (backward-data: 11.9 against 12.0) or where a fused row gave a
    wrong result; F(2x2) fused is then weighed against the tile as the engine runs it, and the
    channel threshold on the rows of what each shape runs."""
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1"]

    def ladder(case, times, fused4_ok=True):
        return [row(version, ms, shape, case, version != "winograd_fused4" or fused4_ok)
                for version, pair in times.items() for shape, ms in zip(shapes, pair)]

    forward = {"engine": (10.0, 10.0), "winograd": (9.0, 8.0), "winograd4": (8.0, 4.0),
               "winograd_fused4": (4.0, 5.0), "winograd_fused": (3.5, 9.0)}
    backward = {"engine": (10.0, 10.0), "winograd": (9.0, 8.0), "winograd4": (8.0, 4.0),
                "winograd_fused4": (7.9, 4.0)}
    ladders = {"conv_forward": ladder("conv_forward", forward),
               "conv_backward_data": ladder("conv_backward_data", backward)}
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE"] == 4
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE_FUSED"] == {"forward": True, "backward_data": False}
    assert evidence["conv2d.ENGINE_WINOGRAD_TILE_FUSED[forward]"] == (
        f"winograd_fused4's time over winograd4's: {shapes[0]} 0.50, {shapes[1]} 1.25")
    # F(2x2) fused against F(4x4) fused: 3.5 against 4.0 ms at 64 channels, 9.0 against 5.0
    # at 256: fused up to 64 (8.5 ms in all against 9.0)
    assert chosen["conv2d.ENGINE_WINOGRAD_FUSED"] == {"forward": 64, "backward_data": None}
    assert evidence["conv2d.ENGINE_WINOGRAD_FUSED[forward]"] == (
        f"winograd_fused's time over winograd_fused4's: {shapes[0]} 0.88, {shapes[1]} 1.80")
    assert evidence["conv2d.ENGINE_WINOGRAD_CHANNELS[forward]"].startswith(
        "winograd_fused4 (winograd_fused up to 64)'s time over the engine's off Winograd: "
        f"{shapes[0]} 0.35, {shapes[1]} 0.50")
    ladders["conv_forward"] = ladder("conv_forward", forward, fused4_ok=False)
    chosen, evidence = choices.choose(ladders, first)
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE_FUSED"]["forward"] is False
    assert "gave a wrong result" in evidence["conv2d.ENGINE_WINOGRAD_TILE_FUSED[forward]"]
    now = dict(first, **{"conv2d.ENGINE_WINOGRAD_TILE_FUSED": {"forward": True, "backward_data": True}})
    ladders["conv_forward"] = ladder("conv_forward", forward)  # fused now: kept, and backward-data too (within the margin)
    assert choices.choose(ladders, now)[0]["conv2d.ENGINE_WINOGRAD_TILE_FUSED"] == {"forward": True,
                                                                                  "backward_data": True}


def test_batch_64_rows_of_a_gpu_kernels_run_weigh_in_fusing(first, tmp_path):
    """batch64_rows reads bench/gpu_kernels.py's Winograd-mode rows of VGG-16 at batch 64
    (forward and backward-data; not batch 1, the engine's own rows or the weight gradient),
    and choose adds them to the ladder's batch-16 shapes in fusing the tile: here the ladder
    alone keeps backward-data unfused (12.1 against 12.0 ms), with the batch-64 layer
    (7.0 against 10.0) fused (19.1 against 22.0); gpu_kernels.py does not validate, so the
    rows of a mode are taken only where the ladder has rows of it, all validated."""
    layer = "vgg16 N64 C64 O128 112x112 k3 s1 p1"

    def result(direction, ms, shape=layer, group="conv"):
        return {"group": group, "shape": shape, "direction": direction, "ours_ms": ms}

    path = tmp_path / "gpu_kernels.json"
    path.write_text(json.dumps({"rows": [
        result("backward-data (winograd4)", 10.0), result("backward-data (winograd_fused4)", 7.0),
        result("backward-data", 6.0), result("backward-weights (winograd4)", 3.0),
        result("backward-data (winograd4)", 1.0, "vgg16 N1 C64 O128 112x112 k3 s1 p1"),
        result("forward (winograd_fused)", 2.0, "cnn_f N64 C256 O256 13x13 k3 s1 p1"),
        result("C = A B", 5.0, "4096^3", "sgemm")]}))
    batch64 = choices.batch64_rows(str(path))
    assert batch64 == {"backward_data": [{"version": "winograd4", "case": "conv_backward_data", "shape": layer,
                                          "ms": 10.0},
                                         {"version": "winograd_fused4", "case": "conv_backward_data", "shape": layer,
                                          "ms": 7.0}]}
    shapes = ["N16 C64 224x224 O64 k3 s1 p1", "N16 C256 56x56 O256 k3 s1 p1"]
    times = {"engine": (10.0, 10.0), "winograd": (9.0, 8.0), "winograd4": (8.0, 4.0), "winograd_fused4": (8.0, 4.1)}
    ladders = {"conv_backward_data": [row(version, ms, shape, "conv_backward_data") for version, pair in times.items()
                                      for shape, ms in zip(shapes, pair)]}
    assert choices.choose(ladders, first)[0]["conv2d.ENGINE_WINOGRAD_TILE_FUSED"]["backward_data"] is False
    chosen, evidence = choices.choose(ladders, first, batch64)
    assert chosen["conv2d.ENGINE_WINOGRAD_TILE_FUSED"]["backward_data"] is True
    assert f"{layer} 0.70" in evidence["conv2d.ENGINE_WINOGRAD_TILE_FUSED[backward_data]"]
    # a mode without validated ladder rows: its batch-64 rows are not taken
    ladders["conv_backward_data"] = [r for r in ladders["conv_backward_data"] if r["version"] != "winograd_fused4"]
    assert choices.choose(ladders, first, batch64)[1]["conv2d.ENGINE_WINOGRAD_TILE_FUSED[backward_data]"] == (
        "no shape timed both: kept")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(KernelError, match="cannot read the batch-64 rows"):
        choices.batch64_rows(str(tmp_path / "broken.json"))


def test_the_command_weighs_batch_64_rows_and_refuses_a_broken_file(tmp_path, capsys, restored):
    (tmp_path / "ladder_conv_backward_data.json").write_text(json.dumps({"rows": [
        row(version, ms, "N16 C64 112x112 O128 k3 s1 p1", "conv_backward_data")
        for version, ms in (("engine", 5.0), ("winograd", 8.0), ("winograd4", 4.0), ("winograd_fused4", 4.0))]}))
    (tmp_path / "gpu_kernels.json").write_text(json.dumps({"rows": [
        {"group": "conv", "shape": "vgg16 N64 C64 O128 112x112 k3 s1 p1", "direction": f"backward-data ({mode})",
         "ours_ms": ms} for mode, ms in (("winograd4", 10.0), ("winograd_fused4", 7.0))]}))
    assert choices.main([str(tmp_path), "--batch64", str(tmp_path / "gpu_kernels.json")]) == 0
    assert "and 2 batch-64 rows of" in capsys.readouterr().out
    assert json.loads((tmp_path / "engine_choices.json").read_text())["conv2d.ENGINE_WINOGRAD_TILE_FUSED"] == {
        "forward": restored["conv2d.ENGINE_WINOGRAD_TILE_FUSED"]["forward"], "backward_data": True}
    assert choices.main([str(tmp_path), "--batch64", str(tmp_path / "none.json")]) == 1
    assert "cannot read the batch-64 rows" in capsys.readouterr().err
