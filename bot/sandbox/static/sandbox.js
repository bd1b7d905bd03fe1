/* kpibot sandbox page: pick a person, talk to the bot as WeCom would show it, move sandbox time.
 * Talks only to this server's /sandbox/api/ (which sends real encrypted callbacks to /wecom/callback).
 */
(function () {
  "use strict";

  var md = window.WeComMarkdown;
  var WEEKDAYS = ["周日", "周一", "周二", "周三", "周四", "周五", "周六"];
  var AVATAR_COLORS = ["#3975c6", "#f5a623", "#43a047", "#e85d75", "#7e57c2", "#00a2b4", "#ff7043", "#5c6bc0"];
  var DIVIDER_GAP_MS = 5 * 60 * 1000;
  var READ_KEY = "kpibot-sandbox-read";

  var state = {
    people: [],
    byId: {},
    botName: "绩效助手",
    current: null,
    entries: {}, // userid -> entries, in seq order
    seen: {}, // seq -> true
    cards: {}, // userid -> task_id -> card state
    cursor: 0,
    read: {}, // userid -> last seq seen
    entered: {}, // userid -> true once enter_agent was sent from this page
    time: null,
    timeFetched: 0,
    timeLoading: false,
    clockVersion: null,
    busy: false,
    lastRenderedAt: null,
    lastRenderedSeq: 0,
    connected: true,
  };

  // ------------------------------------------------------------------ helpers

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function api(path, options) {
    return fetch(path, Object.assign({ cache: "no-store" }, options || {})).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!response.ok) throw new Error(data.message || "请求失败（HTTP " + response.status + "）");
          return data;
        });
    });
  }

  function post(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  }

  var statusTimer = null;
  function showStatus(text, kind) {
    var box = $("status");
    box.textContent = text;
    box.className = "visible " + (kind || "info");
    clearTimeout(statusTimer);
    if (kind === "info") {
      statusTimer = setTimeout(function () {
        box.className = "";
      }, 12000);
    }
  }

  function hideStatus() {
    $("status").className = "";
  }

  // ------------------------------------------------------------------ time

  function offsetMinutes() {
    return state.time ? state.time.offset_minutes : 480;
  }

  function sandboxNowMs() {
    if (!state.time) return Date.now();
    var drift = state.time.running ? performance.now() - state.timeFetched : 0;
    return state.time.now_ms + drift;
  }

  // A Date whose UTC fields read as sandbox local time (the schedule's zone, Asia/Shanghai).
  function local(ms) {
    return new Date(ms + offsetMinutes() * 60000);
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function formatClock(ms) {
    var d = local(ms);
    return (
      d.getUTCFullYear() + "年" + (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日 " +
      WEEKDAYS[d.getUTCDay()] + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes())
    );
  }

  function formatStamp(ms) {
    var d = local(ms);
    var now = local(sandboxNowMs());
    var hm = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    var sameDay = d.getUTCFullYear() === now.getUTCFullYear() && d.getUTCMonth() === now.getUTCMonth() &&
      d.getUTCDate() === now.getUTCDate();
    if (sameDay) return hm;
    var day = (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日 " + WEEKDAYS[d.getUTCDay()] + " " + hm;
    return d.getUTCFullYear() === now.getUTCFullYear() ? day : d.getUTCFullYear() + "年" + day;
  }

  function renderClock() {
    if (!state.time) return;
    $("sandbox-time").textContent = formatClock(sandboxNowMs());
    var next = state.time.next;
    // The scheduler runs a job as its time passes; fetch what comes after it.
    if (next && sandboxNowMs() > next.at_ms + 1500 && !state.busy) loadTime();
  }

  function applyTime(info) {
    state.time = info;
    state.timeFetched = performance.now();
    state.clockVersion = info.version;
    renderClock();
    var next = info.next;
    $("next-event").textContent = next ? next.description + " · " + next.text : "暂无已安排的定时任务";
    renderUpcoming(info.upcoming || []);
    updateTimeButtons();
  }

  function loadTime() {
    if (state.timeLoading) return;
    state.timeLoading = true;
    api("/sandbox/api/time")
      .then(applyTime)
      .catch(function () {})
      .then(function () {
        state.timeLoading = false;
      });
  }

  function renderUpcoming(events) {
    var list = $("upcoming-list");
    list.textContent = "";
    if (!events.length) {
      list.appendChild(el("li", "empty", "暂无已安排的定时任务"));
      return;
    }
    events.forEach(function (event) {
      var item = el("li");
      var text = el("div");
      text.appendChild(el("div", null, event.description));
      text.appendChild(el("div", "when", event.text));
      var button = el("button", "jump-to", "跳到这里");
      button.type = "button";
      button.dataset.jobId = event.job_id;
      button.addEventListener("click", function () {
        $("upcoming").open = false;
        moveTime("/sandbox/api/time/jump", { job_id: event.job_id }, "正在跳到「" + event.description + "」并运行定时任务…");
      });
      item.appendChild(text);
      item.appendChild(button);
      list.appendChild(item);
    });
    updateTimeButtons();
  }

  function updateTimeButtons() {
    var hasNext = !!(state.time && state.time.next);
    $("jump-next").disabled = state.busy || !hasNext;
    $("advance-button").disabled = state.busy || !state.time;
    Array.prototype.forEach.call(document.querySelectorAll("#upcoming-list button"), function (button) {
      button.disabled = state.busy;
    });
  }

  function moveTime(path, body, busyText) {
    state.busy = true;
    updateTimeButtons();
    showStatus(busyText, "busy");
    post(path, body)
      .then(function (result) {
        applyTime(result.time);
        showStatus(result.summary, "info");
      })
      .catch(function (error) {
        showStatus(error.message, "error");
      })
      .then(function () {
        state.busy = false;
        updateTimeButtons();
      });
  }

  // ------------------------------------------------------------------ people

  function colourOf(userid) {
    var hash = 0;
    for (var i = 0; i < userid.length; i++) hash = (hash * 31 + userid.charCodeAt(i)) >>> 0;
    return AVATAR_COLORS[hash % AVATAR_COLORS.length];
  }

  function personAvatar(person, userid) {
    var name = person ? person.name : userid;
    var avatar = el("span", "avatar", name.slice(-2));
    avatar.style.background = colourOf(person ? person.userid : userid);
    return avatar;
  }

  function botAvatar() {
    return el("span", "avatar bot", "绩");
  }

  function badge(person) {
    return el("span", "badge " + person.role, person.role_label);
  }

  function renderPeople() {
    var list = $("people-list");
    list.textContent = "";
    var teams = [];
    var byTeam = {};
    state.people.forEach(function (person) {
      if (!byTeam[person.team]) {
        byTeam[person.team] = [];
        teams.push(person.team);
      }
      byTeam[person.team].push(person);
    });
    teams.forEach(function (team) {
      list.appendChild(el("div", "team-name", team || "其他"));
      byTeam[team].forEach(function (person) {
        var button = el("button", "person");
        button.type = "button";
        button.dataset.userid = person.userid;
        var main = el("div", "person-main");
        var name = el("div", "person-name");
        name.appendChild(el("span", "person-label", person.name));
        name.appendChild(badge(person));
        main.appendChild(name);
        main.appendChild(el("div", "person-position", person.position || person.team));
        var unread = el("span", "unread");
        unread.hidden = true;
        button.appendChild(personAvatar(person));
        button.appendChild(main);
        button.appendChild(unread);
        button.addEventListener("click", function () {
          select(person.userid);
        });
        list.appendChild(button);
      });
    });
    updateUnread();
  }

  function saveRead() {
    try {
      localStorage.setItem(READ_KEY, JSON.stringify(state.read));
    } catch (ignored) {
      /* private mode: unread marks then last for this page only */
    }
  }

  function loadRead(cursor) {
    try {
      var stored = JSON.parse(localStorage.getItem(READ_KEY) || "{}");
      Object.keys(stored).forEach(function (userid) {
        // A mark beyond the transcript belongs to an earlier sandbox (its data dir was removed).
        if (typeof stored[userid] === "number" && stored[userid] <= cursor) state.read[userid] = stored[userid];
      });
    } catch (ignored) {
      state.read = {};
    }
  }

  function updateUnread() {
    Array.prototype.forEach.call(document.querySelectorAll(".person"), function (button) {
      var userid = button.dataset.userid;
      var read = state.read[userid] || 0;
      var count = (state.entries[userid] || []).filter(function (entry) {
        return entry.direction === "from_bot" && entry.seq > read;
      }).length;
      var unread = button.querySelector(".unread");
      unread.hidden = count === 0 || userid === state.current;
      unread.textContent = count > 99 ? "99+" : String(count);
      button.classList.toggle("selected", userid === state.current);
    });
  }

  function markRead(userid) {
    var entries = state.entries[userid] || [];
    if (entries.length) state.read[userid] = entries[entries.length - 1].seq;
    saveRead();
  }

  function select(userid) {
    var person = state.byId[userid];
    if (!person) return;
    state.current = userid;
    if (history.replaceState) history.replaceState(null, "", "#" + encodeURIComponent(userid));
    $("chat-empty").hidden = true;
    $("chat-header").hidden = false;
    $("messages").hidden = false;
    $("composer-form").hidden = false;
    $("chat-title").textContent = state.botName;
    $("chat-sub").textContent =
      "你正以 " + person.name + "（" + person.role_label + " · " + person.team +
      (person.scheme_name ? " · " + person.scheme_name : "") + "）的身份对话";
    renderConversation();
    markRead(userid);
    updateUnread();
    $("composer").focus();
    if (!(state.entries[userid] || []).length && !state.entered[userid]) {
      // Opening the app for the first time: WeCom sends enter_agent and the bot welcomes the person.
      state.entered[userid] = true;
      post("/sandbox/api/enter", { userid: userid }).catch(function (error) {
        showStatus(error.message, "error");
      });
    }
  }

  // ------------------------------------------------------------------ messages

  function renderConversation() {
    var box = $("messages");
    box.textContent = "";
    state.lastRenderedAt = null;
    state.lastRenderedSeq = 0;
    (state.entries[state.current] || []).forEach(appendEntryNode);
    box.scrollTop = box.scrollHeight;
  }

  function appendEntryNode(entry) {
    var box = $("messages");
    if (state.lastRenderedAt === null || entry.at_ms - state.lastRenderedAt >= DIVIDER_GAP_MS) {
      box.appendChild(el("div", "time-divider", formatStamp(entry.at_ms)));
    }
    state.lastRenderedAt = entry.at_ms;
    state.lastRenderedSeq = entry.seq;
    box.appendChild(messageNode(entry));
  }

  function messageNode(entry) {
    var row = el("div", "msg " + entry.direction);
    row.dataset.seq = entry.seq;
    row.dataset.msgtype = entry.msgtype;
    var person = state.byId[entry.userid];
    var fromBot = entry.direction === "from_bot";
    var body = el("div", "msg-body");
    body.appendChild(el("div", "msg-sender", fromBot ? state.botName : person ? person.name : entry.userid));
    body.appendChild(contentNode(entry));
    row.appendChild(fromBot ? botAvatar() : personAvatar(person, entry.userid));
    row.appendChild(body);
    return row;
  }

  function contentNode(entry) {
    var payload = entry.payload || {};
    var bubble;
    switch (entry.msgtype) {
      case "text":
        bubble = el("div", "bubble text");
        if (entry.direction === "to_bot") bubble.textContent = payload.content || "";
        else bubble.innerHTML = md.renderText(payload.content || "");
        return bubble;
      case "markdown":
        bubble = el("div", "bubble md");
        bubble.innerHTML = md.renderMarkdown(payload.content || "");
        return bubble;
      case "textcard":
        return textcardNode(payload);
      case "news":
        return newsNode(payload);
      case "template_card":
        var holder = el("div", "card-holder");
        holder.dataset.taskId = entry.task_id || "";
        fillCard(holder, entry);
        return holder;
      case "image":
        return el("div", "bubble media-note", "[图片]");
      case "file":
        return el("div", "bubble media-note", "[文件]");
      default:
        return el("div", "bubble media-note", "[暂不支持显示的消息类型：" + entry.msgtype + "]");
    }
  }

  function textcardNode(payload) {
    var card = el("div", "textcard");
    card.appendChild(el("div", "textcard-title", payload.title || ""));
    var description = el("div", "textcard-desc");
    description.innerHTML = md.renderTextcardDescription(payload.description || "");
    card.appendChild(description);
    var more = el("a", "textcard-more", payload.btntxt || "详情");
    if (payload.url) {
      more.href = payload.url;
      more.target = "_blank";
      more.rel = "noopener noreferrer";
    }
    card.appendChild(more);
    return card;
  }

  function newsNode(payload) {
    var card = el("div", "textcard");
    (payload.articles || []).forEach(function (article) {
      var item = el("a", "news-item");
      if (article.url) {
        item.href = article.url;
        item.target = "_blank";
        item.rel = "noopener noreferrer";
      }
      item.appendChild(el("div", "textcard-title", article.title || ""));
      if (article.description) item.appendChild(el("div", "news-desc", article.description));
      card.appendChild(item);
    });
    return card;
  }

  // ------------------------------------------------------------------ template cards

  var SOURCE_COLOURS = { 0: "grey", 1: "black", 2: "red", 3: "green" };
  var uniqueName = 0;

  function latestCardEntry(userid, taskId) {
    var entries = state.entries[userid] || [];
    for (var i = entries.length - 1; i >= 0; i--) {
      if (entries[i].msgtype === "template_card" && entries[i].task_id === taskId) return entries[i];
    }
    return null;
  }

  function fillCard(holder, entry) {
    holder.textContent = "";
    var cardState = (state.cards[entry.userid] || {})[entry.task_id] || {};
    var card = cardState.card || entry.payload || {};
    var locked = !!(cardState.clicked_key || cardState.replace_name);
    var root = el("div", "card");
    root.dataset.cardType = card.card_type || "";
    var inner = el("div", "card-inner");
    var questions = []; // functions giving [question_key, [option ids]]

    if (card.source && card.source.desc) {
      var source = el("div", "card-source source-" + (SOURCE_COLOURS[card.source.desc_color] || "grey"));
      source.appendChild(el("span", "dot"));
      source.appendChild(el("span", null, card.source.desc));
      inner.appendChild(source);
    }
    if (card.main_title) {
      if (card.main_title.title) inner.appendChild(el("div", "card-title", card.main_title.title));
      if (card.main_title.desc) inner.appendChild(el("div", "card-desc", card.main_title.desc));
    }
    if (card.emphasis_content && (card.emphasis_content.title || card.emphasis_content.desc)) {
      var emphasis = el("div", "card-emphasis");
      if (card.emphasis_content.title) emphasis.appendChild(el("div", "big", card.emphasis_content.title));
      if (card.emphasis_content.desc) emphasis.appendChild(el("div", "small", card.emphasis_content.desc));
      inner.appendChild(emphasis);
    }
    if (card.quote_area && (card.quote_area.title || card.quote_area.quote_text)) {
      var quote = el("div", "card-quote");
      if (card.quote_area.title) quote.appendChild(el("div", "quote-title", card.quote_area.title));
      if (card.quote_area.quote_text) quote.appendChild(el("div", null, card.quote_area.quote_text));
      inner.appendChild(quote);
    }
    if (card.image_text_area && (card.image_text_area.title || card.image_text_area.desc)) {
      var area = el("div", "card-quote");
      if (card.image_text_area.title) area.appendChild(el("div", "quote-title", card.image_text_area.title));
      if (card.image_text_area.desc) area.appendChild(el("div", null, card.image_text_area.desc));
      inner.appendChild(area);
    }
    if (card.sub_title_text) inner.appendChild(el("div", "card-subtitle", card.sub_title_text));
    if (card.horizontal_content_list && card.horizontal_content_list.length) {
      var list = el("dl", "card-kv");
      card.horizontal_content_list.forEach(function (row) {
        list.appendChild(el("dt", null, row.keyname || ""));
        var value = el("dd");
        if (row.type === 1 && row.url) {
          var anchor = el("a", null, row.value || row.url);
          anchor.href = row.url;
          anchor.target = "_blank";
          anchor.rel = "noopener noreferrer";
          value.appendChild(anchor);
        } else if (row.type === 3 && row.userid) {
          var named = state.byId[row.userid];
          value.textContent = named ? named.name : row.value || row.userid;
        } else {
          value.textContent = row.value || "";
        }
        list.appendChild(value);
      });
      inner.appendChild(list);
    }
    if (card.jump_list && card.jump_list.length) {
      var jumps = el("div", "card-jumps");
      card.jump_list.forEach(function (jump) {
        var anchor = el("a", null, jump.title || jump.url || "");
        if (jump.url) {
          anchor.href = jump.url;
          anchor.target = "_blank";
          anchor.rel = "noopener noreferrer";
        }
        jumps.appendChild(anchor);
      });
      inner.appendChild(jumps);
    }
    if (card.button_selection && card.button_selection.question_key) {
      questions.push(selectQuestion(inner, card.button_selection, locked));
    }
    if (card.checkbox && card.checkbox.question_key) {
      questions.push(checkboxQuestion(inner, card.checkbox, locked));
    }
    (card.select_list || []).forEach(function (question) {
      if (question && question.question_key) questions.push(selectQuestion(inner, question, locked));
    });
    root.appendChild(inner);

    function selectedItems() {
      var selected = {};
      questions.forEach(function (question) {
        var answer = question();
        if (answer[1].length) selected[answer[0]] = answer[1];
      });
      return selected;
    }

    var buttons = el("div", "card-buttons");
    if (cardState.replace_name) {
      buttons.appendChild(el("div", "card-done", cardState.replace_name));
    } else {
      var list = (card.button_list || []).slice();
      if (card.submit_button && card.submit_button.key) {
        list.push({ text: card.submit_button.text || "提交", key: card.submit_button.key, style: 1, type: 0 });
      }
      list.forEach(function (spec) {
        var button = el("button", "card-button style-" + (spec.style || 1), spec.text || "");
        button.type = "button";
        button.dataset.key = spec.key || "";
        if (cardState.clicked_key && cardState.clicked_key === spec.key) button.classList.add("chosen");
        button.disabled = locked;
        button.addEventListener("click", function () {
          if (spec.type === 1 && spec.url) {
            window.open(spec.url, "_blank", "noopener");
            return;
          }
          clickCard(entry, spec.key, selectedItems());
        });
        buttons.appendChild(button);
      });
    }
    if (buttons.childNodes.length) root.appendChild(buttons);
    holder.appendChild(root);
  }

  function selectQuestion(container, question, locked) {
    var wrapper = el("div", "card-question");
    if (question.title) wrapper.appendChild(el("div", "card-question-title", question.title));
    var select = el("select");
    select.disabled = locked;
    (question.option_list || []).forEach(function (option) {
      var item = el("option", null, option.text || option.id);
      item.value = option.id;
      if (option.id === question.selected_id) item.selected = true;
      select.appendChild(item);
    });
    wrapper.appendChild(select);
    container.appendChild(wrapper);
    return function () {
      return [question.question_key, select.value ? [select.value] : []];
    };
  }

  function checkboxQuestion(container, question, locked) {
    var wrapper = el("div", "card-question");
    var multiple = question.mode === 1;
    var name = "q" + uniqueName++;
    var inputs = [];
    (question.option_list || []).forEach(function (option) {
      var label = el("label", "card-option");
      var input = el("input");
      input.type = multiple ? "checkbox" : "radio";
      input.name = name;
      input.value = option.id;
      input.checked = !!option.is_checked;
      input.disabled = locked;
      label.appendChild(input);
      label.appendChild(el("span", null, option.text || option.id));
      wrapper.appendChild(label);
      inputs.push(input);
    });
    container.appendChild(wrapper);
    return function () {
      return [question.question_key, inputs.filter(function (input) {
        return input.checked;
      }).map(function (input) {
        return input.value;
      })];
    };
  }

  function clickCard(entry, key, selected) {
    post("/sandbox/api/click", { userid: entry.userid, task_id: entry.task_id, event_key: key, selected_items: selected })
      .then(function (result) {
        setCardState(entry.userid, entry.task_id, result.card);
      })
      .catch(function (error) {
        showStatus(error.message, "error");
      });
  }

  function setCardState(userid, taskId, cardState) {
    var cards = state.cards[userid] || (state.cards[userid] = {});
    if (cards[taskId] && cards[taskId].seq >= cardState.seq) return;
    cards[taskId] = cardState;
    if (userid !== state.current) return;
    var entry = latestCardEntry(userid, taskId);
    if (!entry) return;
    Array.prototype.forEach.call(document.querySelectorAll("#messages .card-holder"), function (holder) {
      if (holder.dataset.taskId === taskId) fillCard(holder, entry);
    });
  }

  // ------------------------------------------------------------------ updates from the server

  function absorb(data) {
    var fresh = (data.entries || []).filter(function (entry) {
      return !state.seen[entry.seq];
    });
    fresh.sort(function (a, b) {
      return a.seq - b.seq;
    });
    var rerender = false;
    var appended = false;
    fresh.forEach(function (entry) {
      state.seen[entry.seq] = true;
      (state.entries[entry.userid] || (state.entries[entry.userid] = [])).push(entry);
      if (entry.userid === state.current) {
        if (entry.seq < state.lastRenderedSeq) rerender = true;
        else if (!rerender) appendEntryNode(entry);
        appended = true;
      }
    });
    Object.keys(data.cards || {}).forEach(function (userid) {
      Object.keys(data.cards[userid]).forEach(function (taskId) {
        setCardState(userid, taskId, data.cards[userid][taskId]);
      });
    });
    state.cursor = Math.max(state.cursor, data.cursor || 0);
    if (rerender) {
      Object.keys(state.entries).forEach(function (userid) {
        state.entries[userid].sort(function (a, b) {
          return a.seq - b.seq;
        });
      });
      renderConversation();
    } else if (appended) {
      var box = $("messages");
      box.scrollTop = box.scrollHeight;
    }
    if (state.current && appended) markRead(state.current);
    updateUnread();
  }

  function setConnected(connected) {
    if (connected === state.connected) return;
    state.connected = connected;
    if (connected) {
      hideStatus();
      loadTime();
    } else {
      showStatus("与沙盒的连接断开了，正在重连…（沙盒是否已停止？）", "error");
    }
  }

  function poll() {
    var started = Date.now();
    api("/sandbox/api/messages?after=" + state.cursor + "&wait=25")
      .then(function (data) {
        setConnected(true);
        absorb(data);
        if (data.clock_version !== state.clockVersion) loadTime();
        var idle = !(data.entries || []).length && Date.now() - started < 200;
        setTimeout(poll, idle ? 300 : 0);
      })
      .catch(function () {
        setConnected(false);
        setTimeout(poll, 2000);
      });
  }

  // ------------------------------------------------------------------ composer

  function send() {
    var composer = $("composer");
    var text = composer.value;
    if (!text.trim() || !state.current) return;
    var button = $("send-button");
    button.disabled = true;
    composer.value = "";
    post("/sandbox/api/send", { userid: state.current, text: text })
      .catch(function (error) {
        composer.value = text;
        showStatus(error.message, "error");
      })
      .then(function () {
        button.disabled = false;
        composer.focus();
      });
  }

  // ------------------------------------------------------------------ start

  function init() {
    $("status").addEventListener("click", hideStatus);
    $("composer-form").addEventListener("submit", function (event) {
      event.preventDefault();
      send();
    });
    $("composer").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        send();
      }
    });
    $("jump-next").addEventListener("click", function () {
      var next = state.time && state.time.next;
      moveTime("/sandbox/api/time/jump", {}, "正在跳到" + (next ? "「" + next.description + "」" : "下一事件") + "并运行定时任务…");
    });
    $("advance-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var hours = parseFloat($("advance-hours").value);
      moveTime("/sandbox/api/time/advance", { hours: hours }, "正在前进 " + hours + " 小时，并依次运行到点的定时任务…");
    });

    Promise.all([api("/sandbox/api/people"), api("/sandbox/api/messages?after=0")])
      .then(function (results) {
        state.people = results[0].people;
        state.botName = results[0].bot_name || state.botName;
        state.people.forEach(function (person) {
          state.byId[person.userid] = person;
        });
        loadRead(results[1].cursor || 0);
        renderPeople();
        absorb(results[1]);
        var wanted = decodeURIComponent((location.hash || "").slice(1));
        if (wanted && state.byId[wanted]) select(wanted);
        poll();
      })
      .catch(function (error) {
        showStatus("无法加载沙盒：" + error.message, "error");
      });
    loadTime();
    setInterval(renderClock, 1000);
    setInterval(loadTime, 30000);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
