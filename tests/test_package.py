"""One import name: `deepinside` and nothing else on sys.path."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_engine_snippet():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("## The engine in a few lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_python(code, folder):
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)


def test_readme_snippet_runs_beside_a_users_own_models_and_engine(tmp_path):
    # A user's project with modules of the generic names ours had before: the current
    # folder comes first on sys.path, and must not shadow ours.
    (tmp_path / "models.py").write_text("raise ImportError('the user module models.py was imported')\n")
    (tmp_path / "engine.py").write_text("raise ImportError('the user module engine.py was imported')\n")
    snippet = readme_engine_snippet()
    result = run_python(snippet + "\nprint('saliency', saliency.shape, 'features', features.shape)\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "saliency (224, 224) features" in result.stdout


def test_nothing_but_deepinside_is_importable(tmp_path):
    code = ("import importlib.util, deepinside\n"
            "from deepinside import engine, kernels, models, viz, cli\n"
            "print([n for n in ('engine', 'kernels', 'models', 'viz', 'cli', 'tests', 'bench')"
            " if importlib.util.find_spec(n) is not None])\n"
            "print(deepinside.viz.__name__, deepinside.__version__)\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "deepinside.viz 0.1.0"]


def test_the_command_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "deepinside", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "saliency" in result.stdout
