"""Refuse, at once, to start worker processes that would re-run an unguarded script.

Under the ``spawn`` and ``forkserver`` start methods (the default on macOS and Windows, and on
Linux from Python 3.14) every worker imports the parent's main script again. A script that
calls :func:`segconvert.convert` at module level, outside ``if __name__ == "__main__":``,
then makes every worker call it again: multiprocessing refuses inside the worker, the pool
starts another, and the parent waits forever. This module finds that case before any worker
starts: the call stack reaches the main script's module-level code at a statement that is
not such a guard.
"""

from __future__ import annotations

import ast
import multiprocessing
import sys
from pathlib import Path
from types import FrameType

RE_IMPORTING_METHODS = ("spawn", "forkserver")
"""Start methods whose workers import the main script again."""


def check_main_guard(start_method: str | None = None) -> None:
    """End the calling script with one line if workers started now would re-run it.

    ``start_method`` defaults to the one multiprocessing would use.
    """
    method = start_method or multiprocessing.get_start_method(allow_none=True)
    method = method or multiprocessing.get_context().get_start_method()
    if method not in RE_IMPORTING_METHODS:
        return
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or not script:  # interactive, -c: workers do not re-run it
        return
    frame = _module_level_frame(main.__dict__)
    if frame is None or _inside_main_guard(Path(script), frame.f_lineno):
        return
    message = (
        f'worker processes under the "{method}" start method re-run {Path(script).name}, '
        f"whose line {frame.f_lineno} starts this conversion outside "
        "'if __name__ == \"__main__\":' -- put that call under the guard (or pass jobs=1)"
    )
    # The call is module-level code of the running script, outside any guard: nothing above it
    # can handle the problem, so the script ends here with the one line (no traceback), exit 1.
    raise UnguardedScriptError(f"segconvert: error: {message}")


class UnguardedScriptError(SystemExit):
    """Ends a script whose module-level code would start re-importing workers; the message is
    printed as one line on stderr and the exit code is 1."""


def _module_level_frame(main_globals: dict[str, object]) -> FrameType | None:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main_globals and frame.f_code.co_name == "<module>":
            return frame
        frame = frame.f_back
    return None


def _inside_main_guard(script: Path, lineno: int) -> bool:
    """Whether line ``lineno`` of ``script`` is in a top-level ``if __name__ == "__main__":``.

    When the script cannot be read or parsed, the answer is yes: refuse only what is certain.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return True
    for statement in tree.body:
        end = statement.end_lineno or statement.lineno
        if statement.lineno <= lineno <= end:
            return isinstance(statement, ast.If) and _is_main_test(statement.test)
    return True


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    values = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(values) == 1
