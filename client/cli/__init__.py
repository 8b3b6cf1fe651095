"""``cost-oracle``: the command line of the NAS cost oracle.

Each subcommand lives in its own module and registers itself here. Every one runs in-process by
default and against a server with ``--server HOST:PORT``, through the same client API. This
module owns the one place errors are turned into ``error: <field>: <reason>`` lines on stderr and
exit codes (2: bad input, 1: anything else), so no subcommand can leak a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from cost_engine.spec import SpecError
from cost_oracle.client.cli import (
    batch,
    cache,
    calibrate,
    cost,
    filtering,
    info,
    latency,
    listing,
    plot,
    serve,
    specs,
    sweep,
    worker,
)
from cost_oracle.client.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, UsageError
from cost_oracle.client.errors import Code, OracleError

_COMMANDS = (cost, batch, filtering, sweep, plot, listing, specs, info, cache, calibrate, latency, serve, worker)
DEBUG_ENV = "COST_ORACLE_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cost-oracle",
        description="What does this candidate network cost? MACs, FLOPs, params, memory access, peak "
                    "activation memory and latency, cached. In-process by default; --server HOST:PORT "
                    "asks a running oracle.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _COMMANDS:
        module.register(sub)
    return parser


def _error(lines: Sequence[str]) -> None:
    for line in lines:
        sys.stderr.write(f"error: {line}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (the script wrapper passes it to ``sys.exit``)."""

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        _error([str(exc)])
        return EXIT_BAD_INPUT
    except SpecError as exc:
        _error([str(e) for e in exc.errors] or [str(exc)])
        return EXIT_BAD_INPUT
    except OracleError as exc:
        _error([_in_cli_terms(line) for line in exc.lines()])
        return EXIT_BAD_INPUT if exc.code is Code.INVALID_ARGUMENT else EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # `cost-oracle sweep ... | head`: not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except Exception as exc:  # the last line of defence: a bug, reported without a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        _error([f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)"])
        return EXIT_FAILED


def _in_cli_terms(line: str) -> str:
    """An API error line as a CLI user acts on it: the API says how to call Python, the CLI user
    needs the flag (one vocabulary per surface)."""
    if "in_channels" in line and "BlockCandidate(" in line:
        head = line.split(":", 1)[0]
        return (f"{head}: a standalone block needs the channels it receives: pass --in-channels C "
                "(or write {\"spec\": {...}, \"in_channels\": C} in the file)")
    return line


def run() -> None:
    sys.exit(main())
