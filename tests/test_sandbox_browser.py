"""The sandbox page in real headless Chromium: pick a person, talk to the bot, click a card, move sandbox time.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them these tests fail
with a message saying so rather than being skipped. `take_screenshot` is also what docs/make_screenshot.py
uses to draw the README's picture.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from bot.wecom import outbox
from bot.storage.db import transaction
from bot.storage.models import InboxMessage, JobRun, WeeklyReport
from bot.wecom.outbox import Outgoing
from bot.sandbox.running import Sandbox
from bot.sandbox.server import start_sandbox

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--lang=zh-CN",
)
WAIT_SECONDS = 20.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
SCREENSHOT_START = datetime(2026, 11, 27, 9, 0, tzinfo=SHANGHAI)  # a Friday morning, for a stable picture
SCREENSHOT_SIZE = (1440, 900)


# ---------------------------------------------------------------- browser plumbing (shared with docs/)


class ChromiumMissing(RuntimeError):
    pass


def chromium_driver(user_data_dir: Path, size: tuple[int, int] = SCREENSHOT_SIZE) -> webdriver.Chrome:
    """Headless Debian Chromium driven by Debian's chromedriver (never a downloaded one)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        raise ChromiumMissing(
            f"the sandbox browser tests need Debian's chromium and chromium-driver; missing {', '.join(missing)}. "
            "Install them with: apt-get install chromium chromium-driver (.ci/run does this)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


class SandboxPage:
    """The page as a person uses it: pick someone, type, click, move time; each step waits for its effect."""

    def __init__(self, driver: webdriver.Chrome, sandbox: Sandbox) -> None:
        self.driver = driver
        self.sandbox = sandbox

    def wait(self, condition: Callable[[webdriver.Chrome], Any], message: str, timeout: float = WAIT_SECONDS) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition, message)

    def open(self) -> None:
        self.driver.get(self.sandbox.url)
        self.wait_loaded()

    def wait_loaded(self) -> None:
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".person[data-userid]"), "the people list never loaded")
        self.wait(lambda d: "加载中" not in self.clock_text(), "the sandbox time never loaded")

    def person(self, userid: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'.person[data-userid="{userid}"]')

    def pick(self, userid: str) -> None:
        self.person(userid).click()
        self.wait(lambda d: "selected" in (self.person(userid).get_attribute("class") or ""),
                  f"{userid} was not selected")
        self.wait(lambda d: d.find_element(By.ID, "composer").is_displayed(), "no message box")

    def send(self, text: str) -> None:
        box = self.driver.find_element(By.ID, "composer")
        box.clear()
        if "\n" in text:  # Enter would send each line on its own (Shift+Enter is a line break)
            self.driver.execute_script("arguments[0].value = arguments[1];", box, text)
        else:
            box.send_keys(text)
        self.driver.find_element(By.ID, "send-button").click()
        wanted = _lines(text)
        self.wait(lambda d: any(_lines(bubble.text) == wanted for bubble in self.bubbles("to_bot")),
                  f"what was typed ({text!r}) never appeared in the conversation")

    def bubbles(self, direction: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, f"#messages .msg.{direction} .msg-body > :last-child")

    def wait_for_bot(self, needle: str) -> WebElement:
        def found(_: webdriver.Chrome) -> WebElement | bool:
            for bubble in self.bubbles("from_bot"):
                if needle in bubble.text:
                    return bubble
            return False

        return self.wait(found, f"no message from the bot containing {needle!r}")

    def clock_text(self) -> str:
        return self.driver.find_element(By.ID, "sandbox-time").text

    def status_text(self) -> str:
        return self.driver.find_element(By.ID, "status").text

    def advance(self, hours: float) -> None:
        field = self.driver.find_element(By.ID, "advance-hours")
        field.clear()
        field.send_keys(str(hours))
        self.wait(lambda d: d.find_element(By.ID, "advance-button").is_enabled(), "the advance button stays disabled")
        self.hide_status()  # so the wait below sees this move's summary, not an earlier one
        self.driver.find_element(By.ID, "advance-button").click()
        self.wait(lambda d: "时间已从" in self.status_text(), "advancing time never finished")

    def jump_to(self, job_id: str) -> None:
        """Through the list of upcoming events: straight to the next time `job_id` has work, running all before."""
        self.driver.find_element(By.CSS_SELECTOR, "#upcoming summary").click()
        button = self.wait(lambda d: d.find_element(By.CSS_SELECTOR, f'#upcoming-list button[data-job-id="{job_id}"]'),
                           f"{job_id} is not among the upcoming events")
        self.wait(lambda d: button.is_enabled(), "the upcoming events stay disabled")
        self.hide_status()
        button.click()
        self.wait(lambda d: "已跳到" in self.status_text(), f"jumping to {job_id} never finished", timeout=120)

    def hide_status(self) -> None:
        self.driver.execute_script("document.getElementById('status').className = '';")

    def jump_next(self) -> None:
        self.wait(lambda d: d.find_element(By.ID, "jump-next").is_enabled(), "the jump button stays disabled")
        self.hide_status()
        self.driver.find_element(By.ID, "jump-next").click()
        self.wait(lambda d: "已跳到" in self.status_text(), "jumping to the next event never finished")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()]


def deliver(sandbox: Sandbox, userid: str, message: Outgoing, key: str) -> None:
    """Queue a message through the bot's own outbox, as a handler would; the real sender delivers it."""
    with transaction(sandbox.bot.sessions) as session:
        outbox.enqueue(session, key, message, sandbox.clock.now())
    sandbox.bot.sender.wake()


def take_screenshot(path: Path) -> Path:
    """Start a fresh sandbox at a fixed time, play a short scene in Chromium and save the page as a PNG."""
    with tempfile.TemporaryDirectory(prefix="kpibot-screenshot-") as work:
        sandbox = start_sandbox(port=0, data_dir=Path(work) / "data", start_at=SCREENSHOT_START)
        try:
            driver = chromium_driver(Path(work) / "chromium")
            try:
                # The window size includes headless Chromium's (invisible) frame; fix the viewport itself.
                width, height = SCREENSHOT_SIZE
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                       {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
                page = SandboxPage(driver, sandbox)
                page.open()
                page.pick("yangfan")
                page.wait_for_bot("欢迎使用")
                page.send("/result")  # the seeded history: his last published month and the two before it
                page.wait_for_bot("考核结果 · 杨帆")
                path.parent.mkdir(parents=True, exist_ok=True)
                if not driver.save_screenshot(str(path)):
                    raise RuntimeError(f"Chromium could not write {path}")
            finally:
                driver.quit()
        finally:
            sandbox.stop()
    return path


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    running = start_sandbox(port=0, data_dir=tmp_path_factory.mktemp("sandbox"), start_at=SCREENSHOT_START)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    try:
        chromium = chromium_driver(tmp_path_factory.mktemp("chromium"))
    except ChromiumMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    except WebDriverException as error:
        pytest.fail(f"Chromium would not start under chromedriver: {error.msg}", pytrace=False)
    yield chromium
    chromium.quit()


@pytest.fixture
def page(driver: webdriver.Chrome, sandbox: Sandbox) -> SandboxPage:
    page = SandboxPage(driver, sandbox)
    page.open()
    return page


# ---------------------------------------------------------------- the tests


def test_pick_zhang_wei_and_ask_for_help(page: SandboxPage) -> None:
    page.pick("zhangwei")
    page.wait_for_bot("欢迎使用绩效助手")  # opening the app sends enter_agent, as WeCom does
    assert "张伟" in page.driver.find_element(By.ID, "chat-sub").text
    page.send("/help")
    answer = page.wait_for_bot("你可以使用以下命令")
    assert "张伟" in answer.text and "成员" in answer.text


def test_people_are_listed_by_team_with_their_role(page: SandboxPage) -> None:
    teams = [node.text for node in page.driver.find_elements(By.CSS_SELECTOR, ".team-name")]
    assert teams == ["社群运营部", "社群一组", "社群二组"]
    assert "绩效管理员" in page.person("zhoumin").text
    assert "主管" in page.person("lina").text and "主管" in page.person("wangqiang").text
    assert "成员" in page.person("sunyue").text
    assert len(page.driver.find_elements(By.CSS_SELECTOR, ".person")) == 11


def test_the_conversation_survives_a_reload(page: SandboxPage) -> None:
    page.pick("liuyang")
    page.send("你好")
    page.wait_for_bot("我没有理解这条消息")
    page.driver.refresh()
    page.wait_loaded()
    page.wait(lambda d: "selected" in (page.person("liuyang").get_attribute("class") or ""),
              "the reload forgot who was picked")
    page.wait_for_bot("我没有理解这条消息")
    assert [b.text for b in page.bubbles("to_bot")] == ["你好"]


def test_a_weekly_report_is_written_and_submitted_with_the_card_button(page: SandboxPage, sandbox: Sandbox) -> None:
    questions = sandbox.bot.config.weekly_report.questions
    page.pick("yangfan")
    page.send("/report")
    page.wait_for_bot(questions[0].title)
    answers = {"key_actions": "组织 2 场社群活动，访谈 5 位新用户", "results": "新增群成员 120 人，目标 100",
               "next_week": "筹备 12 月的线上分享会"}
    pasted = "\n".join(f"【{q.title}】\n{answers.get(q.key, '按计划推进')}" for q in questions if q.required)
    cards_before = len(page.driver.find_elements(By.CSS_SELECTOR, ".card-holder"))
    page.send(pasted)
    card = page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".card-holder")[cards_before:] or False,
                     "the report's summary card never arrived")[0]
    card.find_element(By.CSS_SELECTOR, ".card-button.style-1").click()  # the primary button: submit
    page.wait_for_bot("已提交")
    with transaction(sandbox.bot.sessions) as session:
        # the newest: the seeded history holds his earlier weeks too
        report = session.scalars(select(WeeklyReport).where(WeeklyReport.userid == "yangfan")
                                 .order_by(WeeklyReport.week.desc())).first()
    assert report is not None and report.status == "submitted"
    assert {key: report.answers.get(key) for key in answers} == answers


def test_markdown_renders_wecom_subset_and_no_html(page: SandboxPage, sandbox: Sandbox) -> None:
    page.pick("chenjing")
    content = ("# 本周周报\n**已提交** 5 项\n<font color=\"warning\">请在周五 18:00 前确认</font>\n"
               "<font color=\"info\">完成</font> <font color=\"comment\">备注</font>\n"
               "> 引用的一行\n`/report`\n[查看详情](/sandbox-no-such-page)\n"
               "<img src=x onerror=\"document.title='hacked'\"><script>document.title='hacked'</script>")
    deliver(sandbox, "chenjing", Outgoing.markdown("chenjing", content), "browser-test-markdown")
    bubble = page.wait_for_bot("本周周报")
    assert bubble.find_element(By.CSS_SELECTOR, ".md-h1").text == "本周周报"
    assert bubble.find_element(By.CSS_SELECTOR, "strong").text == "已提交"
    warning = bubble.find_element(By.CSS_SELECTOR, ".md-font-warning")
    assert warning.text == "请在周五 18:00 前确认"
    assert warning.value_of_css_property("color") == "rgba(255, 153, 0, 1)"
    assert bubble.find_element(By.CSS_SELECTOR, ".md-font-info").value_of_css_property("color") == "rgba(6, 173, 86, 1)"
    assert bubble.find_element(By.CSS_SELECTOR, ".md-font-comment").text == "备注"
    assert bubble.find_element(By.CSS_SELECTOR, ".md-quote").text == "引用的一行"
    assert bubble.find_element(By.CSS_SELECTOR, "code").text == "/report"
    assert bubble.find_element(By.CSS_SELECTOR, "a").get_attribute("href").endswith("/sandbox-no-such-page")
    assert not bubble.find_elements(By.CSS_SELECTOR, "img, script")
    assert "<script>" in bubble.text  # shown as text, never run
    assert page.driver.title != "hacked"


def test_a_card_button_sends_a_real_template_card_event(page: SandboxPage, sandbox: Sandbox) -> None:
    page.pick("zhaolei")
    card = {
        "card_type": "button_interaction", "task_id": "browser-test-card-1",
        "source": {"desc": "绩效助手"},
        "main_title": {"title": "本周周报待确认", "desc": "请确认后提交"},
        "sub_title_text": "关键行动：社群活动 2 场",
        "horizontal_content_list": [{"keyname": "截止", "value": "周五 18:00"}],
        "button_list": [{"text": "提交", "style": 1, "key": "sandbox-test:submit"},
                        {"text": "修改", "style": 2, "key": "sandbox-test:edit"}],
    }
    deliver(sandbox, "zhaolei", Outgoing.card("zhaolei", card), "browser-test-card-1")
    holder = page.wait(lambda d: d.find_element(By.CSS_SELECTOR, '.card-holder[data-task-id="browser-test-card-1"]'),
                       "the card never arrived")
    assert "本周周报待确认" in holder.text and "截止" in holder.text and "周五 18:00" in holder.text
    holder.find_element(By.CSS_SELECTOR, '.card-button[data-key="sandbox-test:submit"]').click()
    page.wait(lambda d: not d.find_element(By.CSS_SELECTOR, '.card-button[data-key="sandbox-test:submit"]').is_enabled(),
              "the clicked card did not lock its buttons")
    # The click arrived as an encrypted template_card_event; no flow owns this key, so the bot says so.
    page.wait_for_bot("这个按钮已失效")
    with transaction(sandbox.bot.sessions) as session:
        payloads = [row.payload for row in session.scalars(select(InboxMessage).where(
            InboxMessage.from_user == "zhaolei", InboxMessage.msg_type == "event"))]
    clicks = [p for p in payloads if p.get("Event") == "template_card_event"]
    assert [(c.get("EventKey"), c.get("TaskId")) for c in clicks] == [("sandbox-test:submit", "browser-test-card-1")]
    assert clicks[0].get("ResponseCode")  # issued by the fake, so the bot could update the card


def test_a_vote_card_submits_the_chosen_options(page: SandboxPage, sandbox: Sandbox) -> None:
    page.pick("huangli")
    card = {
        "card_type": "vote_interaction", "task_id": "browser-test-vote-1",
        "main_title": {"title": "本月自评：沟通协作"},
        "checkbox": {"question_key": "rating", "mode": 0, "option_list": [
            {"id": "r3", "text": "3 分：达到预期"}, {"id": "r4", "text": "4 分：超出预期"}]},
        "submit_button": {"text": "提交", "key": "sandbox-test:vote"},
    }
    deliver(sandbox, "huangli", Outgoing.card("huangli", card), "browser-test-vote-1")
    holder = page.wait(lambda d: d.find_element(By.CSS_SELECTOR, '.card-holder[data-task-id="browser-test-vote-1"]'),
                       "the vote card never arrived")
    options = holder.find_elements(By.CSS_SELECTOR, ".card-option")
    assert [option.text for option in options] == ["3 分：达到预期", "4 分：超出预期"]
    options[1].click()
    holder.find_element(By.CSS_SELECTOR, '.card-button[data-key="sandbox-test:vote"]').click()
    page.wait_for_bot("这个按钮已失效")
    with transaction(sandbox.bot.sessions) as session:
        rows = [row.payload for row in session.scalars(select(InboxMessage).where(InboxMessage.from_user == "huangli"))]
    [vote] = [p for p in rows if p.get("EventKey") == "sandbox-test:vote"]
    assert "r4" in str(vote.get("SelectedItems")) and "r3" not in str(vote.get("SelectedItems"))


def test_time_controls_move_sandbox_time_and_run_jobs(page: SandboxPage, sandbox: Sandbox) -> None:
    before = sandbox.now()
    page.advance(5)
    after = sandbox.now()
    assert timedelta(hours=5) <= after - before < timedelta(hours=5, minutes=1)
    expected = f"{after.month}月{after.day}日"
    page.wait(lambda d: expected in page.clock_text() and f"{after:%H:%M}"[:4] in page.clock_text(),
              f"the page's clock did not move to {after:%Y-%m-%d %H:%M}")

    upcoming = sandbox.scheduler.next_event()
    assert upcoming is not None
    assert upcoming.description in page.driver.find_element(By.ID, "next-event").text
    page.jump_next()
    assert abs(sandbox.now() - upcoming.at) < timedelta(minutes=1)
    page.wait(lambda d: f"{upcoming.at:%H:%M}" in page.clock_text() and f"{upcoming.at.day}日" in page.clock_text(),
              "the page's clock did not show the event's time")
    assert upcoming.description in page.status_text()
    # the job was run for that moment, through the real JobRunner (whatever became of it)
    with transaction(sandbox.bot.sessions) as session:
        runs = session.scalars(select(JobRun).where(JobRun.job_id == upcoming.job_id)).all()
    assert [run.scheduled_for for run in runs] == [upcoming.at]


def test_month_close_and_publish_reach_a_member_while_he_watches(page: SandboxPage, sandbox: Sandbox) -> None:
    page.pick("zhangwei")
    before = len(page.bubbles("from_bot"))
    page.jump_to("month_close")
    page.jump_to("publish")
    # The seeded data makes the month complete, so its publication reaches 张伟 without a reload, as WeCom shows it.
    month = sandbox.now().replace(day=1) - timedelta(days=1)
    title = f"{month.year}年{month.month}月考核结果 · 张伟"
    # Sent as text: [bot] text_fallback is on by default, so people on WeChat can read it too.
    result = page.wait(lambda d: [b for b in page.bubbles("from_bot")[before:] if title in b.text] or False,
                       f"no result message ({title}) reached 张伟")[-1]
    assert "总分" in result.text and "等级" in result.text


def test_take_screenshot_writes_a_png(tmp_path: Path) -> None:
    try:
        path = take_screenshot(tmp_path / "sandbox.png")
    except ChromiumMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
