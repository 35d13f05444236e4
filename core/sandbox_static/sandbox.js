// The sandbox page: type as a WeChat user; the relay's sends come back as the other side of the chat.
// Talks only to /sandbox/api/ (core/sandbox.py). Text is always set with textContent, never as HTML.

const STRINGS = {
  en: {
    title: "Relay sandbox",
    intro: "Play a WeChat user. What you write goes through the relay's real intake to its desk; "
      + "what the relay sends the user appears in this chat. Nothing reaches WeChat.",
    user: "You are the user (openid)",
    newUser: "New user",
    sessionFrom: "Open the chat from a button with SessionFrom",
    sessionHelp: "Sends user_enter_tempsession, as tapping a contact button does.",
    openChat: "Open chat",
    answer: "WeChat answers the relay's sends with",
    answerOk: "delivered",
    answerWindow: "45015: window closed",
    answerQuota: "45047: quota used",
    answerUnauthorized: "48001: API not authorised (a dead letter)",
    inboxLink: "Open the agent inbox",
    chatTitle: "Customer service",
    typing: "typing…",
    picture: "Send a picture",
    message: "Message",
    send: "Send",
    opened: (from) => (from ? `You opened the chat from “${from}”` : "You opened the chat"),
    card: (title) => `[Mini Program card] ${title}`,
    link: (title) => `[Link] ${title}`,
    refused: (why) => `The relay refused it: ${why}`,
    offline: "The sandbox does not answer; retrying…",
    notPicture: "That file is not a picture.",
  },
  zh: {
    title: "中继沙盒",
    intro: "扮演一位微信用户。你发的消息经由中继真实的接收入口送到客服台；中继发给用户的消息显示在这个聊天里。不会发到微信。",
    user: "你是这位用户（openid）",
    newUser: "换个用户",
    sessionFrom: "从带 SessionFrom 的按钮进入会话",
    sessionHelp: "发送 user_enter_tempsession 事件，和点击客服按钮一样。",
    openChat: "进入会话",
    answer: "微信对中继发送的回应",
    answerOk: "送达",
    answerWindow: "45015：超出回复时间",
    answerQuota: "45047：回复条数已用完",
    answerUnauthorized: "48001：接口未授权（成为死信）",
    inboxLink: "打开客服工作台",
    chatTitle: "客服消息",
    typing: "对方正在输入…",
    picture: "发送图片",
    message: "消息",
    send: "发送",
    opened: (from) => (from ? `你从“${from}”进入了会话` : "你进入了会话"),
    card: (title) => `[小程序卡片] ${title}`,
    link: (title) => `[链接] ${title}`,
    refused: (why) => `中继拒绝了：${why}`,
    offline: "沙盒没有响应，正在重试…",
    notPicture: "这个文件不是图片。",
  },
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
const T = STRINGS[LANG];
const POLL_MS = 1000;
const PICTURE_EDGE = 1280; // longest side of a picture sent, in pixels (the relay takes 1 MiB a request)

const $ = (id) => document.getElementById(id);
let openid = localStorage.getItem("sandbox.openid") || newOpenid();
let lastSeq = 0;
let polling = null;
let answerShown = false; // the select shows the server's answer once per user, then the user's choice

function newOpenid() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const id = "sandbox-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  localStorage.setItem("sandbox.openid", id);
  return id;
}

function translate() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.title = T.title;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = T[el.dataset.t];
  $("text").placeholder = T.message;
  document.querySelector(".picture").title = T.picture;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(`/sandbox/api/${path}`, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function say(text) {
  $("status").textContent = text || "";
}

function bubble(entry) {
  const item = document.createElement("li");
  item.dataset.seq = entry.seq;
  if (entry.type === "session") {
    item.className = "system";
    item.textContent = T.opened(entry.text);
    return item;
  }
  item.className = entry.from_user ? "mine" : "theirs";
  const body = document.createElement("div");
  body.className = "bubble";
  if (entry.type === "image" && entry.media) {
    const img = document.createElement("img");
    img.src = `/sandbox/api/media/${encodeURIComponent(entry.media)}`;
    img.alt = T.picture;
    body.append(img);
  } else if (entry.type === "miniprogrampage") {
    body.textContent = T.card(entry.text || "");
  } else if (entry.type === "link") {
    body.textContent = T.link(entry.text || "");
  } else {
    body.textContent = entry.text || "";
  }
  const time = document.createElement("time");
  time.dateTime = new Date(entry.at * 1000).toISOString();
  time.textContent = new Date(entry.at * 1000).toLocaleTimeString(LANG === "zh" ? "zh-CN" : "en",
    { hour: "2-digit", minute: "2-digit" });
  item.append(body, time);
  return item;
}

async function poll() {
  const asked = openid;
  try {
    const answer = await api(`messages?openid=${encodeURIComponent(asked)}&after=${lastSeq}`);
    if (asked !== openid) return; // the user was switched meanwhile
    const chat = $("chat");
    const atBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
    for (const entry of answer.messages) {
      if (entry.seq <= lastSeq) continue;
      lastSeq = entry.seq;
      chat.append(bubble(entry));
    }
    if (answer.messages.length && (atBottom || answer.messages.some((e) => e.from_user))) {
      chat.scrollTop = chat.scrollHeight;
    }
    $("typing").hidden = !answer.typing;
    if (!answerShown) {
      $("answer").value = answer.answer;
      answerShown = true;
    }
    if ($("status").dataset.offline) {
      delete $("status").dataset.offline;
      say("");
    }
  } catch {
    $("status").dataset.offline = "1";
    say(T.offline);
  }
}

function startPolling() {
  clearInterval(polling);
  let busy = false;
  polling = setInterval(async () => {
    if (busy) return;
    busy = true;
    await poll();
    busy = false;
  }, POLL_MS);
}

async function write(message) {
  try {
    await api("messages", { openid, ...message });
    say("");
    await poll();
    return true;
  } catch (error) {
    say(T.refused(error.message));
    return false;
  }
}

async function pictureBase64(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, PICTURE_EDGE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function switchUser(id) {
  openid = id;
  $("openid").value = openid;
  lastSeq = 0;
  answerShown = false;
  $("chat").replaceChildren();
  poll();
}

function wire() {
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (!text.trim()) return;
    if (await write({ type: "text", text })) $("text").value = "";
    $("text").focus();
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("picture").addEventListener("change", async () => {
    const file = $("picture").files[0];
    $("picture").value = "";
    if (!file) return;
    let image;
    try {
      image = await pictureBase64(file);
    } catch {
      say(T.notPicture);
      return;
    }
    await write({ type: "image", image, content_type: "image/jpeg" });
  });
  $("session-form").addEventListener("submit", (event) => {
    event.preventDefault();
    write({ type: "session", session_from: $("session-from").value.trim() });
  });
  $("new-user").addEventListener("click", () => switchUser(newOpenid()));
  $("answer").addEventListener("change", async () => {
    try {
      await api("answer", { openid, answer: $("answer").value });
    } catch (error) {
      say(T.refused(error.message));
    }
  });
}

translate();
wire();
switchUser(openid);
startPolling();
