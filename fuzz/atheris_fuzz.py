"""Coverage-guided fuzzing of one reader with atheris (libFuzzer).

    pip install atheris
    python fuzz/atheris_fuzz.py fer2013_csv -max_total_time=60 -rss_limit_mb=2048 -timeout=20

The first argument is a target of ``fuzz/targets.py``; the rest are libFuzzer flags. The valid
seeds of ``fuzz/corpus.py`` start the corpus. An input that raises anything but an openfer error
naming the file, or runs past ``-timeout`` seconds, or past ``-rss_limit_mb``, is a crash that
libFuzzer saves as ``crash-*`` / ``timeout-*`` / ``oom-*`` for reproduction.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openfer.checkpoint  # noqa: E402,F401
import openfer.data  # noqa: E402,F401
import openfer.engine.checkpointing  # noqa: E402,F401
import openfer.engine.recipe  # noqa: E402,F401
import openfer.serve.uploads  # noqa: E402,F401

from corpus import SEEDS  # noqa: E402
from targets import TARGETS, expected_errors, names_the_file  # noqa: E402


def _instrument_openfer() -> None:
    """Coverage feedback from openfer's own code (instrumenting torch would be slow). The
    readers are imported first: ``openfer.data`` imports each on first use, and a module
    imported after this runs would give no feedback."""
    import importlib
    import inspect
    import pkgutil
    import types

    for info in pkgutil.iter_modules(openfer.data.__path__, "openfer.data."):
        importlib.import_module(info.name)

    for name, module in list(sys.modules.items()):
        if not name.startswith("openfer") or not isinstance(module, types.ModuleType):
            continue
        for value in vars(module).values():
            functions = [value] if inspect.isfunction(value) else \
                [v for v in vars(value).values() if inspect.isfunction(v)] \
                if inspect.isclass(value) else []
            for function in functions:
                if function.__module__.startswith("openfer"):
                    atheris.instrument_func(function)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: atheris_fuzz.py TARGET [libFuzzer flags]; targets: "
                         f"{', '.join(TARGETS)}")
    target = sys.argv.pop(1)
    suffix, read = TARGETS[target]
    expected = expected_errors()
    workdir = Path(tempfile.mkdtemp(prefix=f"openfer-fuzz-{target}-"))
    seeds = workdir / "seeds"
    seeds.mkdir()
    for i, data in enumerate(SEEDS[target]()):
        (seeds / f"seed{i}").write_bytes(data)
    path = workdir / f"input{suffix}"

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        try:
            read(path)
        except expected as exc:
            if not names_the_file(exc, path):
                raise AssertionError(f"error does not name the file: {exc}") from None

    _instrument_openfer()
    if not any(not a.startswith("-") for a in sys.argv[1:]):
        sys.argv.append(str(seeds))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
