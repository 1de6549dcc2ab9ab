"""Settings: defaults, then a TOML file, then GPUCLOUD_* environment variables, then flags.

Every command resolves them the same way, so `gpucloud host list` run beside a live
`gpucloud serve` finds the same database.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gpucloud.errors import ConfigError

ENV_PREFIX = "GPUCLOUD_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gpucloud"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""  # empty: SQLite in data_dir
    # PostgreSQL connections per process (pool + overflow); sum over processes <= max_connections
    database_pool_size: int = 10
    database_max_overflow: int = 5
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how clients reach the API; derived from host/port when empty
    # workers
    worker_concurrency: int = 4
    worker_poll_seconds: float = 0.2
    job_lease_seconds: float = 30.0
    job_max_attempts: int = 5
    job_backoff_seconds: float = 2.0  # first retry waits about this long, doubling each attempt
    job_backoff_max_seconds: float = 300.0
    driver_timeout_seconds: float = 30.0  # a hypervisor call that takes longer fails with DriverTimeout
    # placement (defaults; hosts and regions may override)
    placement_policy: str = "pack"
    numa_unknown_policy: str = "required"
    reserved_cores_per_node: int = 2
    reserved_memory_mib_per_node: int = 8192
    shared_cpu_overcommit: float = 4.0
    # pack's demand mix, "plan=weight,plan=weight" (empty: every GPU plan of the catalog, weight 1)
    placement_demand_mix: str = ""
    claim_retries: int = 5
    # simulated hosts: how long each step takes, long enough that a client polling every 3 s
    # sees every transitional status (a reboot is a shutdown and a boot)
    sim_provision_seconds: float = 5.0  # a new disk from its image (status provisioning)
    sim_boot_seconds: float = 4.0  # booting
    sim_shutdown_seconds: float = 4.0  # shutting_down (and the first half of rebooting)
    sim_resize_seconds: float = 6.0  # growing the disk (resizing, after the shutdown)
    sim_rebuild_seconds: float = 8.0  # re-imaging the disk (rebuilding)
    # instance stats: a reading per instance this often (during host checks), this many kept (a ring)
    stats_sample_seconds: float = 300.0
    stats_samples_kept: int = 288
    # API
    rate_limit_per_minute: int = 1200
    max_body_bytes: int = 96 * 1024  # room for 64 KiB of base64 user data
    http_head_timeout_seconds: float = 10.0  # a request's head must arrive within this (else 408, closed)
    http_body_timeout_seconds: float = 30.0  # and its body within this (else 408, closed)
    http_keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this
    # console
    console_signups_per_hour: int = 5  # new accounts one client address may open per hour
    # host health: every host checked this often, by one sweep job per shard of this many host
    # ids, asking this many hosts at once; drift a check sees is reconciled on the spot
    host_check_seconds: float = 15.0
    host_down_after_missed: int = 3
    host_sweep_shard_size: int = 250
    host_sweep_threads: int = 16
    # billing
    billing_tax_percent: float = 0.0  # applied per invoice line; 0 unless configured
    billing_sweep_seconds: float = 300.0  # closes last month (from the 1st), ends trials, sends notices
    trial_days: int = 7
    trial_credit_usd: float = 2500.0  # the trial's promotion: GPU usage covered up to this much
    trial_auto_approve: bool = False  # approve GPU trial requests as they arrive
    trial_end_policy: str = "shutdown"  # shutdown: stop GPU instances, release GPUs; keep: run on, billed
    trial_disk_keep_days: int = 14  # after a shutdown at trial end, instances (disks) kept this long

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gpucloud.sqlite'}"

    @property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


_FIELDS = {f.name: f for f in fields(Settings)}
_CHOICES = {
    "placement_policy": ("pack", "spread", "first-fit"),
    "numa_unknown_policy": ("required", "preferred", "legacy"),
    "trial_end_policy": ("shutdown", "keep"),
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    if name in _CHOICES and raw not in _CHOICES[name]:
        raise ConfigError(f"{source}: {name} must be {' or '.join(_CHOICES[name])}, not {raw!r}")
    try:
        if kind in ("Path",):
            return Path(str(raw)).expanduser()
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return str(raw).lower() in ("1", "true", "yes", "on")
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be {kind}, got {raw!r}") from None


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """TOML sections become prefixes: [placement] policy = "spread" -> placement_policy."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def _from_file(path: Path) -> dict[str, Any]:
    try:
        table = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    values = _flatten(table)
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {k: _coerce(k, v, str(path)) for k, v in values.items()}


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build the settings; `overrides` are command-line flags (None values are ignored)."""
    env = os.environ if environ is None else environ
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {}
    data_dir = flags.get("data_dir") or env.get(ENV_PREFIX + "DATA_DIR")
    config_file = flags.pop("config", None) or env.get(ENV_PREFIX + "CONFIG")
    if config_file:
        values.update(_from_file(Path(config_file)))
    else:
        implicit = Path(data_dir or values.get("data_dir") or default_data_dir()) / "gpucloud.toml"
        if implicit.is_file():
            values.update(_from_file(implicit))
    for name in _FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, ENV_PREFIX + name.upper())
    for name, raw in flags.items():
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting: {name}")
        values[name] = _coerce(name, raw, f"--{name.replace('_', '-')}")
    settings = replace(Settings(), **values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    if not 0 < s.port < 65536:
        raise ConfigError(f"port must be 1-65535, not {s.port}")
    if not 0 <= s.billing_tax_percent <= 100:
        raise ConfigError(f"billing_tax_percent must be 0-100, not {s.billing_tax_percent}")
    if s.trial_days < 1 or s.trial_disk_keep_days < 0:
        raise ConfigError("trial_days must be at least 1 and trial_disk_keep_days at least 0")
    if s.host_sweep_shard_size < 1 or s.host_sweep_threads < 1:
        raise ConfigError("host_sweep_shard_size and host_sweep_threads must be at least 1")
    url = s.resolved_database_url
    if not url.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"database_url must be sqlite:///PATH or postgresql://..., not {url!r}")
