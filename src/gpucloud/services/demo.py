"""`gpucloud serve --demo`: a simulated fleet in every region, an admin login, a staff and a
customer account with tokens. Running it again on the same data dir reuses what is there."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from gpucloud.config import Settings
from gpucloud.domain.flags import GPU_INSTANCES
from gpucloud.errors import NotFound
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, billing_demo, flags, hosts
from gpucloud.services.billing_demo import seed_billing_demo
from gpucloud.store import accounts as account_queries
from gpucloud.store.db import Database
from gpucloud.store.fleet import host_by_ref

# region -> [(profile, how many hosts)]
DEMO_FLEET: dict[str, list[tuple[str, int]]] = {
    "us-east": [("rtx6000-2s4g", 3), ("rtx4000ada-2s8g", 2), ("h100-nps4-8g", 1), ("rtx6000-numa-unknown", 1),
                ("rtx6000-blocked-group", 1), ("cpu-2s", 2)],
    "ap-west": [("rtx6000-2s4g", 2), ("rtx4000ada-2s8g", 1), ("cpu-2s", 1)],
    "ap-south": [("rtx6000-2s4g", 2), ("h100-nps4-8g", 1), ("cpu-2s", 1)],
    "eu-central": [("rtx4000ada-2s8g", 1), ("cpu-2s", 1)],
    "us-central": [("cpu-2s", 2)],
    "us-west": [("cpu-2s", 2)],
    "eu-west": [("cpu-2s", 2)],
    "ap-northeast": [("cpu-2s", 2)],
}
STAFF_EMAIL = "staff@gpucloud.example"
CUSTOMER_EMAIL = "customer@example.com"
ADMIN_USER = "admin"


@dataclass(frozen=True)
class DemoInfo:
    api_url: str
    admin_user: str
    admin_password: str
    staff_token: str
    customer_token: str
    promo_code: str = ""  # billing's demo: redeem with linode-cli account promo-add


def demo_file(settings: Settings) -> Path:
    return settings.data_dir / "demo.json"


def seed_demo(db: Database, settings: Settings) -> DemoInfo:
    """Seed once; later runs find demo.json and the accounts it names, and change nothing."""
    existing = _reusable(db, settings)
    if existing:
        return existing
    for region, shapes in DEMO_FLEET.items():
        for profile, count in shapes:
            topology = load_profile(profile)
            for n in range(1, count + 1):
                name = f"{region}-{profile}-{n:02d}"
                with db.read() as s:
                    if host_by_ref(s, name):
                        continue
                hosts.register_host(db, settings, name=name, region=region, topology=topology, driver="sim",
                                    profile=profile, actor="demo")
    password = secrets.token_urlsafe(12)
    with db.read() as s:
        admin_exists = account_queries.admin_by_username(s, ADMIN_USER) is not None
    if admin_exists:
        with db.write() as s:
            admin = account_queries.admin_by_username(s, ADMIN_USER)
            if admin is None:
                raise RuntimeError(f"admin user {ADMIN_USER} vanished while the demo was being set up")
            admin.password_hash = accounts.hash_password(password)
    else:
        accounts.create_admin(db, ADMIN_USER, password, "admin")
    tokens = {}
    for email, staff, username in ((STAFF_EMAIL, True, "staff"), (CUSTOMER_EMAIL, False, "customer")):
        try:
            accounts.get_account(db, email)
        except NotFound:
            accounts.create_account(db, email, staff=staff, username=username,
                                    company="gpucloud" if staff else "Example Corp")
        tokens[email] = accounts.create_token(db, email, scopes="*", label="demo").secret
    _open_gpu_flag_for_staff(db)
    promo = seed_billing_demo(db, settings, CUSTOMER_EMAIL) if not _billing_seeded(db) else billing_demo.PROMO_CODE
    info = DemoInfo(api_url=settings.resolved_public_url + "/v4", admin_user=ADMIN_USER, admin_password=password,
                    staff_token=tokens[STAFF_EMAIL], customer_token=tokens[CUSTOMER_EMAIL], promo_code=promo)
    path = demo_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")
    path.chmod(0o600)
    return info


def _reusable(db: Database, settings: Settings) -> DemoInfo | None:
    path = demo_file(settings)
    if not path.is_file():
        return None
    try:
        info = DemoInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    with db.read() as s:
        found = account_queries.token_by_hash(s, accounts.hash_token(info.customer_token))
    if not found:
        return None
    return DemoInfo(**{**asdict(info), "api_url": settings.resolved_public_url + "/v4"})


def _billing_seeded(db: Database) -> bool:
    try:
        accounts.get_account(db, billing_demo.TRIAL_EMAIL)
    except NotFound:
        return False
    return True


def _open_gpu_flag_for_staff(db: Database) -> None:
    """GPU plans start dark: visible to staff only, until an operator opens the flag."""
    flags.ensure_flag_state(db, GPU_INSTANCES, "staff", why="demo: GPU plans start with staff only", actor="demo")
