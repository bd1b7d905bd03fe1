"""`kpibot doctor`: one line per thing a real deployment needs (config, database, WeCom access, calendar, outbox)."""
from __future__ import annotations

import argparse
import re
import secrets
import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.appraisal.workcalendar import has_calendar_data
from bot.cli.support import first_line, head_revision, help_text, open_engine
from bot.clock import Clock, SystemClock
from bot.config import Config, ConfigError, default_config_path, load_config
from bot.storage.db import current_revision, make_session_factory, transaction
from bot.storage.models import OutboxMessage
from bot.templates import render
from bot.wecom.crypto import CallbackCrypto
from bot.wecom.sender import current_pause

# WeCom's 60020 errmsg names the address it saw: "... from ip: 203.0.113.7, more info at ...".
_SEEN_IP = re.compile(r"from ip:\s*([0-9A-Fa-f.:*x]+)")
BAD_SECRET, BAD_CORPID, UNTRUSTED_IP = 40001, 40013, 60020
NOT_VISIBLE, NO_DEPARTMENT, NO_USER = 60011, 60003, 60111
ACTIVE_STATUS = 1


@dataclass(frozen=True)
class Check:
    """One line of the report: which check (`code`, a branch of ops/doctor.txt.j2), passed or not, and what to say."""

    code: str
    ok: bool
    params: Mapping[str, Any] = field(default_factory=dict)


class _WeCom:
    """The few calls the checks make, straight over HTTP: the doctor must not need the database for a token."""

    def __init__(self, config: Config) -> None:
        self.base = config.wecom.api_base_url
        self.timeout = config.wecom.request_timeout
        self.http = requests.Session()
        self.http.proxies = requests.utils.get_environ_proxies(self.base)
        self.http.trust_env = False
        self.token: str | None = None

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        if self.token is not None:
            params["access_token"] = self.token
        response = self.http.get(self.base + path, params=params, timeout=self.timeout)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def check_config(path: Path) -> tuple[Check, Config | None]:
    try:
        config = load_config(path)
    except ConfigError as error:
        return Check("config", False, {"path": str(path), "error": str(error)}), None
    except OSError as error:
        return Check("config", False, {"path": str(path), "error": first_line(error)}), None
    return Check("config", True, {"path": str(path)}), config


def check_database(config: Config) -> tuple[Check, Any]:
    """Reachable, and at Alembic's head revision; returns the engine when reachable."""
    head = head_revision()
    try:
        engine = open_engine(config)
        current = current_revision(engine)
    except Exception as error:  # noqa: BLE001 - any failure to connect is this check's answer
        return Check("database", False, {"error": first_line(error)}), None
    return Check("database", current == head, {"current": current, "head": head}), engine


def check_token(wecom: _WeCom, config: Config) -> Check:
    try:
        result = wecom.get("gettoken", corpid=config.wecom.corp_id, corpsecret=config.wecom.secret.reveal())
    except (requests.RequestException, ValueError) as error:
        return Check("gettoken", False, {"error": first_line(error), "base": wecom.base})
    errcode = int(result.get("errcode") or 0)
    if errcode == 0 and result.get("access_token"):
        wecom.token = str(result["access_token"])
        return Check("gettoken", True, {"expires_in": result.get("expires_in")})
    return Check("gettoken", False, {"errcode": errcode, "errmsg": result.get("errmsg", ""),
                                     "corp_id": config.wecom.corp_id, "agent_id": config.wecom.agent_id})


def _blocked(code: str, by: str) -> Check:
    return Check(code, False, {"blocked_by": by})


def check_trusted_ip(wecom: _WeCom) -> tuple[Check, dict[str, Any] | None]:
    """A harmless call with the token (department/list): WeCom answers 60020 here when the server's address
    is not among 企业可信IP (gettoken itself is not IP-checked). Its answer also feeds the visibility check."""
    try:
        result = wecom.get("department/list")
    except (requests.RequestException, ValueError) as error:
        return Check("trusted_ip", False, {"error": first_line(error)}), None
    errcode = int(result.get("errcode") or 0)
    if errcode == UNTRUSTED_IP:
        seen = _SEEN_IP.search(str(result.get("errmsg", "")))
        return Check("trusted_ip", False, {"ip": seen.group(1) if seen else None}), None
    return Check("trusted_ip", True), result


def check_departments(wecom: _WeCom, config: Config, visible: dict[str, Any]) -> Check:
    """The configured departments are inside the app's 可见范围 (60011 otherwise)."""
    errcode = int(visible.get("errcode") or 0)
    if errcode:
        return Check("departments", False, {"errcode": errcode, "errmsg": visible.get("errmsg", "")})
    listed = visible.get("department") or []
    roots = tuple(config.org.departments)
    if roots in ((), (1,)):
        return Check("departments", bool(listed), {"count": len(listed), "invisible": [], "missing": []})
    invisible: list[int] = []
    missing: list[int] = []
    for root in roots:
        answer = wecom.get("department/list", id=root)
        code = int(answer.get("errcode") or 0)
        if code == NOT_VISIBLE:
            invisible.append(root)
        elif code:
            missing.append(root)
    return Check("departments", not invisible and not missing,
                 {"count": len(listed), "invisible": invisible, "missing": missing})


def check_admins(wecom: _WeCom, config: Config) -> Check:
    """Every configured admin exists in WeCom, is visible to the app and active (status 1)."""
    admins = list(config.org.admins)
    problems: list[dict[str, Any]] = []
    for userid in admins:
        answer = wecom.get("user/get", userid=userid)
        code = int(answer.get("errcode") or 0)
        if code == NO_USER:
            problems.append({"userid": userid, "kind": "missing"})
        elif code == NOT_VISIBLE:
            problems.append({"userid": userid, "kind": "invisible"})
        elif code:
            problems.append({"userid": userid, "kind": "error", "errcode": code, "errmsg": answer.get("errmsg", "")})
        elif int(answer.get("status") or ACTIVE_STATUS) != ACTIVE_STATUS:
            problems.append({"userid": userid, "kind": "inactive", "status": answer.get("status")})
    return Check("admins", bool(admins) and not problems, {"admins": admins, "problems": problems})


def check_calendar(config: Config, clock: Clock) -> Check:
    year = clock.now().astimezone(config.schedule.zone).year
    unknown = [y for y in (year, year + 1) if not has_calendar_data(y)]
    return Check("calendar", not unknown, {"years": [year, year + 1], "unknown": unknown})


def outbox_pause_reason(session: Session) -> str | None:
    """Why sending is paused (a configuration error the sender met and has not got past), or None."""
    pause = current_pause(session)
    return None if pause is None else pause.reason


def check_outbox(engine: Any, clock: Clock) -> Check:
    now = clock.now()
    with transaction(make_session_factory(engine)) as session:
        paused = outbox_pause_reason(session)
        failed = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "failed")) or 0
        # A row "sending" past its claim belongs to a process that died mid-send.
        stuck = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == "sending", OutboxMessage.claimed_until < now)) or 0
    return Check("outbox", not paused and not failed and not stuck,
                 {"paused": paused, "failed": failed, "stuck": stuck})


def check_public_url(url: str, config: Config) -> Check:
    """WeCom's URL verification (GET with an encrypted echostr) through the public address: the answer must be
    the decrypted echostr, which only our callback with this config's Token and EncodingAESKey gives."""
    crypto = CallbackCrypto(config.wecom.token.reveal(), config.wecom.encoding_aes_key.reveal(), config.wecom.corp_id)
    plain = secrets.token_hex(8)
    echostr = crypto.encrypt(plain)
    timestamp, nonce = str(int(_time.time())), secrets.token_hex(5)
    params = {"msg_signature": crypto.signature(timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce,
              "echostr": echostr}
    try:
        response = requests.get(url, params=params, timeout=max(5.0, config.wecom.request_timeout))
    except requests.RequestException as error:
        return Check("public_url", False, {"url": url, "error": first_line(error)})
    if response.status_code != 200:
        return Check("public_url", False, {"url": url, "status": response.status_code})
    return Check("public_url", response.text == plain, {"url": url, "status": 200})


def run_checks(config_path: Path, *, clock: Clock, public_url: str | None = None) -> list[Check]:
    """Every check, in order; a check that needs an earlier one which failed says so instead of guessing."""
    check, config = check_config(config_path)
    checks = [check]
    if config is None:
        return checks
    database, engine = check_database(config)
    checks.append(database)
    wecom = _WeCom(config)
    try:
        token = check_token(wecom, config)
        checks.append(token)
        visible = None
        if token.ok:
            ip, visible = check_trusted_ip(wecom)
            checks.append(ip)
        else:
            checks.append(_blocked("trusted_ip", "gettoken"))
        if visible is not None:
            checks.append(check_departments(wecom, config, visible))
            checks.append(check_admins(wecom, config))
        else:
            by = "gettoken" if not token.ok else "trusted_ip"
            checks.extend([_blocked("departments", by), _blocked("admins", by)])
    except (requests.RequestException, ValueError) as error:
        checks.append(Check("wecom", False, {"error": first_line(error)}))
    finally:
        wecom.http.close()
    checks.append(check_calendar(config, clock))
    checks.append(check_outbox(engine, clock) if engine is not None and database.ok
                  else _blocked("outbox", "database"))
    if public_url:
        checks.append(check_public_url(public_url, config))
    if engine is not None:
        engine.dispose()
    return checks


def report(checks: Sequence[Check]) -> str:
    return render("ops/doctor.txt.j2", checks=checks, failed=sum(1 for c in checks if not c.ok))


def doctor(config_path: Path, *, clock: Clock, public_url: str | None = None,
           out: Callable[[str], None] = print) -> int:
    """Print the report; 0 only when every check passed."""
    checks = run_checks(config_path, clock=clock, public_url=public_url)
    out(report(checks))
    return 0 if all(check.ok for check in checks) else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    return doctor(Path(args.config or default_config_path()), clock=SystemClock(), public_url=args.public_url)


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help=help_text("doctor", "doctor"))
    parser.add_argument("--public-url", metavar="URL", help=help_text("doctor", "doctor.--public-url"))
    parser.set_defaults(func=cmd_doctor)
