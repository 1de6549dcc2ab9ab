"""Runs many linode-cli commands in one process (linode-cli's start-up, its 1.4 MB spec,
costs about a second; a walk of 150 commands in subprocesses would take minutes).

Usage (environment pointing linode-cli at a server, as tests/api/conftest.py's `cli` does):
    python -m tests.api.cli_walk RESULTS.json < commands.json
where commands.json is [[arg, ...], ...]; each result is {"args", "code", "stdout", "stderr"}.
Also `RESULTS.json --ops GROUP...` writes [[group, action, method, url], ...] from linode-cli's
own spec. (Results go to a file: some of linode-cli's output bypasses sys.stdout.)
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

import linodecli  # configures itself from the environment when imported


def _ops(groups: list[str]) -> list[list[str]]:
    return [[group, action, op.method.upper(), op.url.split("{apiVersion}", 1)[1]]
            for group in groups for action, op in linodecli.cli.ops[group].items()]


def _run(args: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["linode-cli", *args]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            linodecli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - a crash is a result to report, not to hide
            code, err = 99, io.StringIO(f"{type(exc).__name__}: {exc}")
    return {"args": args, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    target, rest = sys.argv[1], sys.argv[2:]
    if rest[:1] == ["--ops"]:
        results: list = _ops(rest[1:])
    else:
        results = [_run(args) for args in json.load(sys.stdin)]
    with open(target, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
