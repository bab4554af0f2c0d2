"""Runs hostile command lines through `deepinside.cli.main` in this process, one after the
other, and reports how each ended, as JSON on stdout.

Run by tests/test_hostile_inputs.py as a subprocess with a memory cap (an allocation past
it is a MemoryError: a traceback, so a failure) and a time limit per case (SIGALRM), so
that importing numpy, scipy and scikit-learn is paid once for hundreds of cases.

    python tests/hostile_driver.py MEMORY_BYTES SECONDS < cases.json > results.json

cases.json: [{"argv": [...], "env": {...}}, ...]; each result: {"status": exit status or
null, "stderr": what the command printed there, "escaped": the exception that escaped
main (a bug), "seconds": time taken}.
"""
import contextlib
import io
import json
import os
import resource
import signal
import sys
import time
import traceback


class CaseTimeout(BaseException):
    """Raised by the alarm: BaseException, so that no `except Exception` swallows it."""


def _alarm(signum, frame):
    raise CaseTimeout()


def run_case(main, case, seconds):
    from deepinside.engine import backend
    backend._process_default = None  # as in a fresh process: the default not chosen yet
    saved = {name: os.environ.get(name) for name in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    stderr, escaped, status = io.StringIO(), None, None
    start = time.perf_counter()
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            status = main(case["argv"])
    except CaseTimeout:
        escaped = f"timed out after {seconds} s"
    except BaseException as error:  # noqa: B036 - reported, not handled: the test fails on it
        escaped = "".join(traceback.format_exception_only(type(error), error)).strip()[-500:]
    finally:
        signal.alarm(0)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"status": status, "stderr": stderr.getvalue(), "escaped": escaped,
            "seconds": round(time.perf_counter() - start, 3)}


def main():
    memory, seconds = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    signal.signal(signal.SIGALRM, _alarm)
    from deepinside.cli import main as deepinside

    cases = json.load(sys.stdin)
    results = [run_case(deepinside, case, seconds) for case in cases]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
