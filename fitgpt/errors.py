"""
The errors fitgpt reports to a user as one line instead of a traceback.

Every entry point runs its main() through exit_on_error: a FitGPTError prints "error: <message>"
on stderr and exits with its exit_code, 2 for bad input (a setting, a file, a dataset) and 1 for a
run that failed on good input (non-finite loss, out of memory, a checkpoint that could not be
written). An OSError that reaches it (a file that cannot be read or written) is one line and exit
1 as well. Ctrl-C prints one line and exits 130. Anything else is a bug and keeps its traceback.
"""

import sys
from collections.abc import Callable


class FitGPTError(Exception):
    """Bad input: the message names the file or setting and says what to do."""

    exit_code = 2


class ConfigError(FitGPTError):
    """A bad config file, override or setting value."""


class DataError(FitGPTError):
    """Input data that cannot be used: a text file, a shard, a dataset folder."""


class CheckpointError(FitGPTError):
    """A checkpoint that cannot be read or used."""


class SetupError(FitGPTError):
    """A device or dtype this machine cannot provide."""


class RunFailure(FitGPTError):
    """A run that started from good input and could not go on."""

    exit_code = 1


def exit_on_error(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run main(argv) as a script's entry point: fitgpt errors and Ctrl-C become one line."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except FitGPTError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
