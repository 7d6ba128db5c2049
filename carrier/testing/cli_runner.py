"""Run the ``carrier`` command in-process: what the ``carrier_cli`` fixture returns.

The command runs against a given ``PluginHost`` (the ``host`` fixture, with the plugins
under test registered), reads the given text as its standard input, and its standard
output, standard error and exit status come back as a ``CliResult``.
"""

from __future__ import annotations

import asyncio
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carrier.host import PluginHost

__all__ = ["CliResult", "CliRunner"]


@dataclass(frozen=True)
class CliResult:
    """What one ``carrier`` command printed and its exit status.

    Attributes:
        exit_code: The status the shell would see: ``0`` on success, ``2`` for a usage
            error from argparse, the command's own status otherwise.
        stdout: Everything written to standard output.
        stderr: Everything written to standard error.
    """

    exit_code: int
    stdout: str
    stderr: str


class CliRunner:
    """Calls ``carrier.cli.main(argv, host=host)`` with captured standard streams.

    Args:
        host: The host the command runs against; no entry point is loaded.
    """

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def __call__(self, *args: str, stdin: str = "") -> CliResult:
        """Run ``carrier ARGS...`` with ``stdin`` as its input, e.g.
        ``carrier_cli("chat", stdin="hi\\n")``.

        Raises:
            RuntimeError: When called inside a running event loop: the command runs
                its own (``asyncio.run``), so call it from a plain ``def`` test.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "carrier_cli was called inside a running event loop, but the command runs "
                "its own with asyncio.run(). Call it from a plain `def` test, not an "
                "`async def` one."
            )
        from carrier.cli import main

        out, err = io.StringIO(), io.StringIO()
        saved_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(list(args), host=self.host)
                except SystemExit as exc:  # argparse: --help, --version, usage errors
                    code = _exit_status(exc.code, err)
        finally:
            sys.stdin = saved_stdin
        return CliResult(exit_code=code, stdout=out.getvalue(), stderr=err.getvalue())


def _exit_status(code: object, stderr: io.StringIO) -> int:
    """The status the interpreter would exit with for ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1
