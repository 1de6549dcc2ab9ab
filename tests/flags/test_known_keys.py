"""Retirement's safety net: the code names no flag keys it does not know, and what the product
seeds into a database is only flags the code knows."""

from __future__ import annotations

import ast
from pathlib import Path

import gpucloud
from gpucloud.services import flags
from gpucloud.services.demo import seed_demo
from tests.conftest import make_settings

SRC = Path(gpucloud.__file__).parent
REGISTRY = SRC / "domain" / "flags.py"
# flag API calls and where their key argument sits (services take the database first)
KEY_ARGUMENT = {"enabled": 0, "evaluate": None, "set_state": 1, "ensure_flag_state": 1, "allow": 1, "deny": 1,
                "clear": 1, "get_flag": 1, "history": 1, "Flag": 0, "region_flag_key": None}


def flag_keys_named(source: str) -> set[tuple[int, str]]:
    """(line, key) for every string literal passed as the key of a flag API call, and every
    literal that looks like a region flag key, wherever it is."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.startswith("gpu-region-") and len(node.value) > len("gpu-region-"):
            found.add((node.lineno, node.value))
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name not in KEY_ARGUMENT:
            continue
        position = KEY_ARGUMENT[name]
        args = [node.args[position]] if position is not None and len(node.args) > position else []
        args += [kw.value for kw in node.keywords if kw.arg == "key"]
        found |= {(a.lineno, a.value) for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return found


def test_the_scanner_finds_keys_at_flag_call_sites():
    source = '''
cache.enabled("gpu-instances", account)
flags.set_state(db, "gpu-turbo", "on", why="x", actor="y")
service.allow(db, key="gpu-region-mars", account=1)
"a@example.com".split("@")
x = "gpu-region-moon"
'''
    assert flag_keys_named(source) == {(2, "gpu-instances"), (3, "gpu-turbo"), (4, "gpu-region-mars"),
                                       (6, "gpu-region-moon")}


def test_the_code_names_no_unknown_flag_keys():
    known = flags.known()
    unknown = []
    for path in sorted(SRC.rglob("*.py")):
        if path == REGISTRY:
            continue
        unknown += [f"{path.relative_to(SRC)}:{line}: {key}"
                    for line, key in sorted(flag_keys_named(path.read_text())) if key not in known]
    assert unknown == [], "flag keys the registry (gpucloud/domain/flags.py) does not know:\n" + "\n".join(unknown)


def test_the_demo_seeds_only_flags_the_code_knows(sqlite_db, tmp_path):
    seed_demo(sqlite_db, make_settings(tmp_path, sqlite_db.url))
    assert flags.unknown_flags_in_db(sqlite_db) == []
    assert flags.get_flag(sqlite_db, "gpu-instances").state == "staff"
