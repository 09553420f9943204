// The sandbox chat: act as a simulated Telegram user against the sandbox's user API
// (bots/sandbox, endpoints under /sandbox on the sandbox's own port). Plain browser
// JavaScript, no build step. Message text is rendered from Telegram's text + entities
// (never as raw HTML), so whatever the bot or a user typed cannot inject markup.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("sandbox-config").textContent);
  const T = config.texts;
  const base = config.sandboxUrl + "/sandbox";
  const STORE = "nalgae-sandbox-user";
  const $ = (id) => document.getElementById(id);
  const els = {
    who: $("who"), chat: $("chat"), log: $("log"), me: $("me"), block: $("block"),
    newUser: $("new-user"), keyboard: $("keyboard"), toast: $("toast"),
    compose: $("compose"), text: $("text"), error: $("error"),
  };
  let user = null;        // {user_id, first_name, language_code}
  let cursor = 0;
  let blocked = false;
  let generation = 0;     // bumps when the person changes, so old poll loops stop

  // Which of the sandbox's bots this page talks to: by numeric id (a page per bot; the
  // page never holds that bot's token), or the sandbox's own default token.
  const selector = config.bot ? { bot: String(config.bot) }
    : config.token ? { token: config.token } : {};

  function withToken(path) {
    const [key] = Object.keys(selector);
    if (!key) return base + path;
    return base + path + (path.includes("?") ? "&" : "?") + key + "=" + encodeURIComponent(selector[key]);
  }

  async function call(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ ...body, ...selector });
    }
    const response = await fetch(withToken(path), init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function showError(message) {
    els.error.textContent = message || "";
    els.error.hidden = !message;
  }

  let toastTimer = null;
  function toast(message) {
    els.toast.textContent = message;
    els.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { els.toast.hidden = true; }, 4000);
  }

  // --- rendering Telegram text + entities -------------------------------------------------

  const TAGS = {
    bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre",
    spoiler: "span", blockquote: "blockquote", expandable_blockquote: "blockquote",
  };

  function safeUrl(url) {
    try {
      const parsed = new URL(url, location.href);
      return ["http:", "https:", "tg:", "mailto:"].includes(parsed.protocol) ? parsed.href : "#";
    } catch (_) {
      return "#";
    }
  }

  function wrap(node, entity, segmentText) {
    if (entity.type === "text_link" || entity.type === "url") {
      const a = document.createElement("a");
      a.href = safeUrl(entity.type === "url" ? segmentText : entity.url);
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.append(node);
      return a;
    }
    const tag = TAGS[entity.type];
    if (!tag) return node;
    const el = document.createElement(tag);
    if (entity.type === "spoiler") el.className = "spoiler";
    el.append(node);
    return el;
  }

  // Entity offsets count UTF-16 code units, as JavaScript strings do.
  function renderText(text, entities) {
    const fragment = document.createDocumentFragment();
    if (!text) return fragment;
    if (!entities || !entities.length) {
      fragment.append(text);
      return fragment;
    }
    const points = new Set([0, text.length]);
    for (const e of entities) {
      points.add(e.offset);
      points.add(e.offset + e.length);
    }
    const cuts = [...points].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
    for (let i = 0; i < cuts.length - 1; i++) {
      const from = cuts[i], to = cuts[i + 1];
      const segment = text.slice(from, to);
      let node = document.createTextNode(segment);
      for (const e of entities) {
        if (e.offset <= from && e.offset + e.length >= to) node = wrap(node, e, segment);
      }
      fragment.append(node);
    }
    return fragment;
  }

  function button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function inlineKeyboard(message) {
    const rows = message.reply_markup && message.reply_markup.inline_keyboard;
    if (!rows || !rows.length) return null;
    const box = document.createElement("div");
    box.className = "buttons";
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const key of row) {
        if (key.url) {
          const a = document.createElement("a");
          a.href = safeUrl(key.url);
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.textContent = key.text + " ↗";
          line.append(a);
        } else {
          line.append(button(key.text, () => press(message.message_id, key.callback_data)));
        }
      }
      box.append(line);
    }
    return box;
  }

  function pollBlock(message) {
    const poll = message.poll;
    const box = document.createElement("div");
    box.className = "buttons";
    const title = document.createElement("strong");
    title.textContent = "📊 " + T.poll + ": " + poll.question;
    box.append(title);
    poll.options.forEach((option, index) => {
      const line = document.createElement("div");
      line.className = "row";
      line.append(button(option.text, () => answerPoll(poll.id, index)));
      box.append(line);
    });
    return box;
  }

  function renderEntry(entry) {
    const m = entry.message;
    const li = document.createElement("li");
    li.className = "msg" + (entry.from_bot ? "" : " me");
    li.dataset.id = String(m.message_id);
    li.append(renderText(m.text || m.caption || "", m.entities || m.caption_entities));
    if (m.document) {
      const link = document.createElement("a");
      link.href = entry.file_url ? config.sandboxUrl + entry.file_url : "#";
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = "📄 " + (m.document.file_name || T.document);
      if (li.childNodes.length) li.append(document.createElement("br"));
      li.append(link);
    }
    if (m.poll) li.append(pollBlock(m));
    const keys = inlineKeyboard(m);
    if (keys) li.append(keys);
    if (keys || m.poll) li.classList.add("with-buttons");
    if (m.edit_date) {
      const mark = document.createElement("span");
      mark.className = "edited";
      mark.textContent = "✎";
      li.append(mark);
    }
    return li;
  }

  function apply(entries) {
    const nearBottom = els.log.scrollHeight - els.log.scrollTop - els.log.clientHeight < 80;
    for (const entry of entries) {
      const id = String(entry.message.message_id);
      const old = els.log.querySelector(`li[data-id="${CSS.escape(id)}"]`);
      if (entry.deleted) {
        if (old) old.remove();
        continue;
      }
      const li = renderEntry(entry);
      if (old) old.replaceWith(li);
      else els.log.append(li);
    }
    if (nearBottom || entries.length) els.log.scrollTop = els.log.scrollHeight;
  }

  function replyKeyboard(markup) {
    els.keyboard.replaceChildren();
    const rows = markup && markup.keyboard;
    if (!rows) return;
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const key of row) {
        const label = typeof key === "string" ? key : key.text;
        line.append(button(label, () => send(label)));
      }
      els.keyboard.append(line);
    }
  }

  function setBlocked(value) {
    blocked = !!value;
    els.block.textContent = blocked ? T.unblock : T.block;
    if (blocked) toast(T.blocked);
  }

  // --- actions ----------------------------------------------------------------------------

  async function send(text) {
    try {
      await call("POST", `/users/${user.user_id}/messages`, { text });
      showError("");
    } catch (error) {
      showError(error.message);
    }
  }

  async function press(messageId, data) {
    try {
      const { callback_query_id: queryId } = await call(
        "POST", `/users/${user.user_id}/press`, { message_id: messageId, data });
      const result = await call("GET", `/users/${user.user_id}/callbacks/${encodeURIComponent(queryId)}?wait=5`);
      if (result.answer && result.answer.text) toast(result.answer.text);
      showError("");
    } catch (error) {
      showError(error.message);
    }
  }

  async function answerPoll(pollId, index) {
    try {
      await call("POST", `/users/${user.user_id}/poll_answers`, { poll_id: pollId, option_ids: [index] });
    } catch (error) {
      showError(error.message);
    }
  }

  async function poll(myGeneration) {
    let delay = 500;
    while (myGeneration === generation) {
      try {
        const data = await call("GET", `/chats/${user.user_id}/messages?after=${cursor}&wait=25&all=1`);
        if (myGeneration !== generation) return;
        apply(data.messages);
        cursor = data.cursor;
        if (data.blocked !== blocked) setBlocked(data.blocked);
        replyKeyboard(data.reply_keyboard);
        showError("");
        delay = 500;
      } catch (error) {
        showError(T.unreachable);
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10000);
      }
    }
  }

  async function begin(person) {
    const created = await call("POST", "/users", person);
    user = person;
    localStorage.setItem(STORE, JSON.stringify(person));
    cursor = 0;
    els.log.replaceChildren();
    els.me.textContent = `${person.first_name} (${person.user_id})`;
    els.who.hidden = true;
    els.chat.hidden = false;
    setBlocked(created.blocked);
    showError("");
    generation += 1;
    poll(generation);
    els.text.focus();
  }

  function randomId() {
    return String(100000000 + Math.floor(Math.random() * 900000000));
  }

  function showForm(person) {
    generation += 1;
    els.chat.hidden = true;
    els.who.hidden = false;
    els.who.elements.first_name.value = person ? person.first_name : "";
    els.who.elements.user_id.value = person ? person.user_id : randomId();
    els.text.placeholder = T.placeholder;
  }

  els.who.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = els.who.elements;
    begin({
      user_id: Number(form.user_id.value),
      first_name: form.first_name.value.trim(),
      language_code: form.language_code.value,
    }).catch(() => showError(T.unreachable));
  });
  els.compose.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value;
    if (!text.trim()) return;
    els.text.value = "";
    send(text);
  });
  els.block.addEventListener("click", async () => {
    try {
      const state = await call("POST", `/users/${user.user_id}/${blocked ? "unblock" : "block"}`, {});
      setBlocked(state.blocked);
    } catch (error) {
      showError(error.message);
    }
  });
  els.newUser.addEventListener("click", () => {
    localStorage.removeItem(STORE);
    showForm(null);
  });

  els.text.placeholder = T.placeholder;
  const saved = JSON.parse(localStorage.getItem(STORE) || "null");
  if (saved) begin(saved).catch(() => showForm(saved));
  else showForm(null);
})();
