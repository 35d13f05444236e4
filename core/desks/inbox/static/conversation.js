// One conversation: its header (window, assignee, actions), the history with each reply's delivery
// state, and the composer (reply or private note, picture, canned replies).
import { api } from "./client.js";
import { $, h, pictureBase64 } from "./dom.js";
import { canReply, clock, sessionFrom, userLabel, windowText } from "./format.js";
import { reason, t } from "./i18n.js";

const PAGE = 50; // messages the API gives per page

export class ConversationView {
  /** `app` gives the signed-in agent (`app.agent`), `app.changed()` after an action, `app.fail(error)`. */
  constructor(app) {
    this.app = app;
    this.conversation = null;
    this.mode = "reply";
    this.cannedReplies = null;
    this.messages = new Map(); // id -> message, of the shown conversation
    this.hasEarlier = false;
    this.wire();
  }

  get id() {
    return this.conversation && this.conversation.id;
  }

  /** Show `conversation` (a row of the list); loads its history when it is another one. */
  async show(conversation) {
    const another = this.id !== conversation.id;
    this.update(conversation);
    if (another) {
      this.messages = new Map();
      this.hasEarlier = false;
      $("messages").replaceChildren();
      $("composer-text").value = "";
      $("composer-error").textContent = "";
      this.setMode("reply");
      await this.refresh();
    } else {
      await this.markRead();
    }
  }

  hide() {
    this.conversation = null;
  }

  /** Reload the newest page of the history (after an event that names this conversation). */
  async refresh() {
    await this.load();
    await this.markRead();
  }

  /** Merge a page of history (the newest, or the one before `before`) into what is shown. */
  async load(before = null) {
    const id = this.id;
    if (!id) return;
    const answer = await api.messages(id, before);
    if (id !== this.id) return;
    const page = answer.messages || [];
    if (before || this.messages.size === 0) this.hasEarlier = page.length >= PAGE;
    for (const message of page) this.messages.set(message.id, message);
    if (answer.conversation) this.update(answer.conversation);
    this.renderMessages(before !== null);
  }

  /** Newer data of the shown conversation (or another one to show). */
  update(conversation) {
    const moved = this.id === conversation.id && this.conversation.status !== conversation.status;
    this.conversation = conversation;
    this.renderHeader();
    if (moved) this.app.statusChanged(conversation);
  }

  /** Mark what this agent sees as read (the list's unread counts follow through an event). */
  async markRead() {
    if (this.conversation && this.conversation.unread && document.visibilityState === "visible") {
      const answer = await api.read(this.id).catch(() => null);
      if (answer && answer.conversation && answer.conversation.id === this.id) this.update(answer.conversation);
      this.app.changed();
    }
  }

  renderHeader() {
    const c = this.conversation;
    const open = canReply(c);
    $("conv-title").textContent = userLabel(c);
    $("conv-title").title = `${c.app_id || ""} ${c.openid || ""}`.trim();
    const status = h("span", { class: `status status-${c.status}` },
      t({ open: "statusOpen", waiting: "statusWaiting", closed: "statusClosed" }[c.status] || "statusOpen"));
    const window = h("span", { class: `window${open ? "" : " closed"}` }, windowText(c, true));
    const quota = open && typeof c.quota_left === "number" ? h("span", { class: "quota" }, t("repliesLeft", c.quota_left))
      : null;
    const assignee = h("span", { class: "assignee" }, c.assignee ? t("assignedTo", c.assignee) : t("unassigned"));
    $("conv-meta").replaceChildren(...[status, window, quota, assignee].filter(Boolean));
    $("assign").hidden = c.assignee === this.app.agent.name;
    $("close").hidden = c.status === "closed";
    $("reopen").hidden = c.status !== "closed";
    $("cannot-reply").hidden = open || this.mode !== "reply";
    $("composer").classList.toggle("blocked", !open && this.mode === "reply");
    this.updateSendState();
  }

  renderMessages(keepTop = false) {
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    const nearBottom = fromBottom - list.clientHeight < 80;
    const wasEmpty = list.childElementCount === 0;
    const ordered = [...this.messages.values()].sort((a, b) => Number(a.id) - Number(b.id));
    const earlier = this.hasEarlier ? h("li", { class: "earlier" }, h("button", {
      type: "button", class: "secondary", onclick: () => this.load(ordered[0].id).catch((e) => this.app.fail(e)),
    }, t("loadEarlier"))) : null;
    list.replaceChildren(...[earlier, ...ordered.map((message) => this.item(message))].filter(Boolean));
    if (keepTop) list.scrollTop = list.scrollHeight - fromBottom; // earlier messages above: stay in place
    else if (wasEmpty || nearBottom) list.scrollTop = list.scrollHeight;
  }

  item(message) {
    const direction = ["in", "out", "note"].includes(message.direction) ? message.direction : "in";
    if (direction === "in" && message.type === "session") {
      return h("li", { class: "system" }, t("userOpened", sessionFrom(message)));
    }
    let body;
    if (message.type === "image") {
      body = message.image ? h("img", {
        src: message.image, loading: "lazy",
        alt: t(direction === "in" ? "pictureAlt" : "pictureSentAlt"),
      }) : t("pictureUnavailable");
    } else {
      body = message.text || "";
    }
    const meta = [h("time", { datetime: new Date((message.at || 0) * 1000).toISOString() }, clock(message.at))];
    if (message.agent && direction !== "in") meta.push(h("span", { class: "author" }, message.agent));
    if (direction === "note") meta.push(h("span", { class: "note-label" }, t("noteLabel")));
    if (direction === "out") meta.push(stateOf(message));
    return h("li", { class: `message ${direction}`, dataset: { id: message.id } },
      h("div", { class: "bubble" }, body), h("div", { class: "meta" }, meta));
  }

  setMode(mode) {
    this.mode = mode;
    for (const name of ["reply", "note"]) {
      const tab = $(`mode-${name}`);
      tab.setAttribute("aria-selected", String(name === mode));
      tab.tabIndex = name === mode ? 0 : -1;
    }
    $("composer").classList.toggle("noting", mode === "note");
    $("composer-text").placeholder = t(mode === "note" ? "notePlaceholder" : "replyPlaceholder");
    $("send").textContent = t(mode === "note" ? "addNote" : "send");
    $("picture-button").hidden = mode === "note";
    if (this.conversation) this.renderHeader();
  }

  updateSendState() {
    const blocked = this.mode === "reply" && !(this.conversation && canReply(this.conversation));
    $("send").disabled = blocked;
    $("picture-input").disabled = blocked;
    $("composer-text").setAttribute("aria-describedby", blocked ? "cannot-reply" : "composer-hint");
  }

  async send() {
    const text = $("composer-text").value;
    if (!text.trim() || !this.id || $("send").disabled) return;
    const id = this.id;
    await this.act(() => (this.mode === "note" ? api.note(id, text) : api.reply(id, { text })), () => {
      $("composer-text").value = "";
    });
  }

  async sendPicture(file) {
    let picture;
    try {
      picture = await pictureBase64(file);
    } catch {
      $("composer-error").textContent = t("notPicture");
      return;
    }
    const id = this.id;
    await this.act(() => api.reply(id, { image_base64: picture.data, content_type: picture.type }));
  }

  /** Run an API call for this conversation; on success refresh it and the list, else say why. */
  async act(call, then = () => {}) {
    $("composer-error").textContent = "";
    try {
      await call();
      then();
      await Promise.all([this.refresh(), this.app.changed()]);
    } catch (error) {
      $("composer-error").textContent = error.status === 413 ? t("tooBig") : t("failed", error.message);
    }
  }

  async toggleCanned() {
    const panel = $("canned-panel");
    if (!panel.hidden) {
      panel.hidden = true;
      $("canned-button").setAttribute("aria-expanded", "false");
      return;
    }
    try {
      this.cannedReplies = (await api.canned()).canned || [];
    } catch (error) {
      this.app.fail(error);
      return;
    }
    $("canned-filter").value = "";
    this.renderCanned();
    panel.hidden = false;
    $("canned-button").setAttribute("aria-expanded", "true");
    $("canned-filter").focus();
  }

  renderCanned() {
    const filter = $("canned-filter").value.trim().toLowerCase();
    const shown = this.cannedReplies.filter((c) => `${c.title} ${c.text}`.toLowerCase().includes(filter));
    const items = shown.map((canned) => h("li", {},
      h("button", { type: "button", class: "canned", onclick: () => this.useCanned(canned) },
        h("strong", {}, canned.title), h("span", {}, canned.text))));
    $("canned-list").replaceChildren(...items);
    $("canned-empty").hidden = this.cannedReplies.length > 0;
  }

  useCanned(canned) {
    const box = $("composer-text");
    box.value = box.value ? `${box.value}${box.value.endsWith("\n") ? "" : " "}${canned.text}` : canned.text;
    $("canned-panel").hidden = true;
    $("canned-button").setAttribute("aria-expanded", "false");
    box.focus();
  }

  wire() {
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    $("composer-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    for (const mode of ["reply", "note"]) $(`mode-${mode}`).addEventListener("click", () => this.setMode(mode));
    $("composer-modes").addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        this.setMode(this.mode === "reply" ? "note" : "reply");
        $(`mode-${this.mode}`).focus();
      }
    });
    $("picture-input").addEventListener("change", () => {
      const file = $("picture-input").files[0];
      $("picture-input").value = "";
      if (file) this.sendPicture(file);
    });
    $("canned-button").addEventListener("click", () => this.toggleCanned());
    $("canned-filter").addEventListener("input", () => this.renderCanned());
    $("canned-panel").addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.toggleCanned().then(() => $("canned-button").focus());
    });
    $("assign").addEventListener("click", () => this.act(() => api.assignToMe(this.id)));
    $("close").addEventListener("click", () => this.act(() => api.close(this.id)));
    $("reopen").addEventListener("click", () => this.act(() => api.reopen(this.id)));
  }
}

function stateOf(message) {
  if (message.state === "undeliverable") {
    return h("span", { class: "state undeliverable" }, `${t("stateUndeliverable")}: ${reason(message.reason)}`);
  }
  if (message.state === "sent") return h("span", { class: "state sent" }, `✓ ${t("stateSent")}`);
  return h("span", { class: "state queued" }, t("stateQueued"));
}
