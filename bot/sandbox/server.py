"""Starting the sandbox: the real bot, the built-in fake WeCom with the sample organisation and the page, in one process."""
from __future__ import annotations

import errno
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import KpiBot
from bot.config import Config, ConfigError, parse_config
from bot.fakes.wecom import FakeWeCom
from bot.sandbox import demo_org, seed as sandbox_seed
from bot.sandbox.api import create_sandbox_blueprint
from bot.sandbox.running import SANDBOX_HOST, Sandbox
from bot.sandbox.scheduler import SandboxClock
from bot.sandbox.state import SandboxState
from bot.shipped_files import EXAMPLE_CONFIG
from bot.storage.db import make_engine, upgrade_database
from bot.templates import render_error

SHANGHAI = ZoneInfo("Asia/Shanghai")
START_HOUR = 9


# The demo values: config.example.toml works as it is with the built-in fake, so the sandbox uses it
# (every section a flow adds appears there with a demo value; a wheel ships a copy). Without it, the bare
# minimum below: the demo app's values, which only ever meet the built-in fake.
SANDBOX_WECOM: dict[str, Any] = {
    "corp_id": "wwkpibotdemo00001",
    "agent_id": 1000002,
    "secret": "demo-secret-for-the-built-in-fake-wecom",
    "token": "kpibotDemoToken",
    "encoding_aes_key": "kpibotDemoEncodingAesKey0123456789abcdefghi",
}


class SandboxStartError(Exception):
    """The sandbox could not start; `code` and `params` render templates/<locale>/sandbox/start_error.txt.j2."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def message(self) -> str:
        return render_error("sandbox/start_error.txt.j2", f"sandbox could not start ({self.code})", **self.params,
                            code=self.code)


def default_start(today: date | None = None) -> datetime:
    """09:00 of today's date in Asia/Shanghai: a working morning, before the day's prompts go out."""
    day = today or datetime.now(SHANGHAI).date()
    return datetime(day.year, day.month, day.day, START_HOUR, 0, tzinfo=SHANGHAI)


def demo_settings() -> dict[str, Any]:
    """The demo configuration as parsed TOML: config.example.toml, else the bare minimum in code."""
    try:
        return tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"wecom": dict(SANDBOX_WECOM), "org": {"admins": list(demo_org.DEMO_ADMINS)}}


def sandbox_config(settings: dict[str, Any], data_dir: Path, api_base_url: str, port: int) -> Config:
    """The demo config with the sandbox's own parts: the fake's URL, a SQLite file in the data dir, loopback."""
    raw = {name: dict(value) if isinstance(value, dict) else value for name, value in settings.items()}
    raw["wecom"] = {**raw.get("wecom", {}), "api_base_url": api_base_url}
    raw["database"] = {"url": f"sqlite:///{(data_dir / 'kpibot.db').resolve()}"}
    # Long-polls from the page hold a thread each; callbacks and the fake's calls need theirs.
    raw["server"] = {**raw.get("server", {}), "host": SANDBOX_HOST, "port": port, "threads": 24}
    org = raw.setdefault("org", {})
    org["admins"] = sorted(set(org.get("admins", [])) | set(demo_org.DEMO_ADMINS))
    # environ={}: a KPIBOT_DATABASE_URL meant for a real deployment must never reach the sandbox.
    try:
        return parse_config(raw, environ={}, base_dir=EXAMPLE_CONFIG.parent)
    except ConfigError as error:
        raise SandboxStartError("config_invalid", reason=str(error)) from None


def _prepare_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        raise SandboxStartError("data_dir_unwritable", path=str(data_dir),
                                reason=error.strerror or type(error).__name__) from None
    return data_dir.resolve()


def start_sandbox(*, port: int, data_dir: Path | str, start_at: datetime | None = None, seed: bool = True) -> Sandbox:
    """Start everything, bound to 127.0.0.1, and return the running sandbox (the CLI and the tests use this).

    `start_at` sets sandbox time for a new data dir (default: today 09:00 Asia/Shanghai); an existing data
    dir resumes where its time was left. Raises SandboxStartError with a user-facing reason.
    """
    data_dir = _prepare_data_dir(Path(data_dir))
    state = SandboxState.load(data_dir / "sandbox-state.json")
    clock = SandboxClock(state.now or start_at or default_start())
    settings = demo_settings()
    wecom = {**SANDBOX_WECOM, **settings.get("wecom", {})}
    fake = FakeWeCom(corp_id=wecom["corp_id"], corp_secret=wecom["secret"], agent_id=wecom["agent_id"],
                     clock=clock.now)
    demo_org.populate(fake)
    fake.start()
    engine = None
    bot: KpiBot | None = None
    try:
        config = sandbox_config(settings, data_dir, fake.base_url, port)
        engine = make_engine(config.database.url.reveal(), pool_size=config.server.threads + 8)
        try:
            upgrade_database(engine)
        except Exception as error:  # noqa: BLE001 - a locked, foreign or read-only file: one clear line
            raise SandboxStartError("database_failed", path=str(data_dir / "kpibot.db"),
                                    reason=str(error).splitlines()[0][:200]) from None
        bot = KpiBot(config, clock=clock, engine=engine)
        sandbox = Sandbox(bot=bot, fake=fake, clock=clock, data_dir=data_dir, state=state)
        bot.flask.register_blueprint(create_sandbox_blueprint(sandbox))
        try:
            bound = bot.start_http(SANDBOX_HOST, port)
        except OSError as error:
            code = {errno.EADDRINUSE: "port_in_use", errno.EACCES: "port_denied"}.get(error.errno or 0, "port_failed")
            raise SandboxStartError(code, port=port, reason=error.strerror or str(error)) from None
        sandbox._connect(bound)
        bot.start(scheduler=False, sync_org_now=False)
        if seed:
            sandbox_seed.run_seed_steps(sandbox_seed.SeedContext(bot=bot, fake=fake, clock=clock), state)
        bot.scheduler = sandbox.scheduler  # KpiBot.stop() stops it like the real one
        sandbox.scheduler.start()
        sandbox.save_state()
        return sandbox
    except BaseException:
        if bot is not None:
            bot.stop()
        elif engine is not None:
            engine.dispose()
        fake.stop()
        raise
