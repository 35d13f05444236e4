// The agent inbox: sign-in (and first-admin set-up), the conversation list beside one conversation,
// admin screens, live updates, the unread badge in the title and browser notifications.
// Views follow the address: #/ (list), #/c/<conversation id>, #/admin; #setup=<token> is the set-up link.
import { AdminView } from "./admin.js";
import { api, setCsrfToken, whenSessionLost } from "./client.js";
import { ConversationView } from "./conversation.js";
import { $, showOnly } from "./dom.js";
import { preview, userLabel } from "./format.js";
import { t, translate } from "./i18n.js";
import { TABS, renderList, tabOf } from "./list.js";
import { listen } from "./live.js";

const TICK_MS = 30000; // the reply windows count down on screen
const REFRESH_DEBOUNCE_MS = 150;
const PAGE = { open: 200, waiting: 200, closed: 50 }; // conversations a tab loads at first (200: the API's most)

class App {
  constructor() {
    this.agent = null;
    this.loaded = false;
    this.lists = { open: [], waiting: [], closed: null }; // per tab; closed ones load when first shown
    this.more = { open: false, waiting: false, closed: false };
    this.tab = "open";
    this.stopLive = null;
    this.pending = null;
    this.conversation = new ConversationView(this);
    this.admin = new AdminView(this);
  }

  // -- signing in ---------------------------------------------------------------------------------
  async boot() {
    translate();
    document.title = t("appName");
    this.wire();
    whenSessionLost(() => this.signedOut());
    const setup = new URLSearchParams(location.hash.slice(1)).get("setup");
    if (setup) return this.showSetup(setup);
    try {
      await this.signedIn(await api.session());
    } catch {
      this.signedOut();
    }
  }

  showSetup(token) {
    showOnly($("setup-view"), $("login-view"), $("setup-view"), $("app-view"));
    $("setup-form").onsubmit = async (event) => {
      event.preventDefault();
      $("setup-error").textContent = "";
      if ($("setup-password").value !== $("setup-password-again").value) {
        $("setup-error").textContent = t("setupMismatch");
        return;
      }
      try {
        const session = await api.setup(token, $("setup-name").value.trim(), $("setup-password").value);
        history.replaceState(null, "", location.pathname); // the link is used: out of the address bar
        await this.signedIn(session);
      } catch (error) {
        $("setup-error").textContent = error.status === 400 ? t("failed", error.message) : t("setupFailed");
      }
    };
    $("setup-name").focus();
  }

  signedOut() {
    if (this.stopLive) this.stopLive();
    this.stopLive = null;
    this.agent = null;
    this.loaded = false;
    this.lists = { open: [], waiting: [], closed: null };
    setCsrfToken(null);
    showOnly($("login-view"), $("login-view"), $("setup-view"), $("app-view"));
    document.title = t("appName");
    $("login-name").focus();
  }

  async login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await this.signedIn(await api.login($("login-name").value.trim(), $("login-password").value));
      $("login-form").reset();
    } catch (error) {
      $("login-error").textContent = error.status === 429 ? t("throttled")
        : error.status === 401 ? t("loginFailed") : t("failed", error.message);
      $("login-password").select();
    }
  }

  async signedIn(session) {
    this.agent = session.agent;
    setCsrfToken(session.csrf_token);
    $("me").textContent = this.agent.name;
    $("nav-admin").hidden = !this.agent.admin;
    showOnly($("app-view"), $("login-view"), $("setup-view"), $("app-view"));
    await this.loadConversations();
    await this.route();
    this.stopLive = listen((event) => this.onEvent(event), (mode) => this.onLiveMode(mode),
      session.live !== "poll");
    this.offerNotifications();
  }

  async logout() {
    await api.logout().catch(() => {});
    history.replaceState(null, "", location.pathname);
    this.signedOut();
  }

  // -- views --------------------------------------------------------------------------------------
  async route() {
    if (!this.agent) return;
    const path = location.hash.replace(/^#/, "") || "/";
    const adminShown = path === "/admin" && this.agent.admin;
    showOnly(adminShown ? $("admin-pane") : $("inbox-pane"), $("admin-pane"), $("inbox-pane"));
    $("nav-inbox").setAttribute("aria-current", String(!adminShown));
    $("nav-admin").setAttribute("aria-current", String(adminShown));
    if (adminShown) {
      this.conversation.hide();
      await this.admin.show();
      return;
    }
    const match = path.match(/^\/c\/(.+)$/);
    const id = match ? decodeURIComponent(match[1]) : null;
    const conversation = id && (this.find(id) || await api.conversation(id).then((a) => a.conversation, () => null));
    $("inbox-pane").dataset.show = conversation ? "conversation" : "list";
    showOnly(conversation ? $("conversation-body") : $("conversation-empty"),
      $("conversation-body"), $("conversation-empty"));
    if (conversation) {
      this.tab = tabOf(conversation);
      await this.conversation.show(conversation).catch((error) => this.fail(error));
    } else {
      this.conversation.hide();
    }
    this.renderList();
  }

  /** Every conversation loaded, whatever its tab. */
  get conversations() {
    return TABS.flatMap((tab) => this.lists[tab] || []);
  }

  find(id) {
    return this.conversations.find((c) => c.id === id);
  }

  renderList() {
    if (this.lists[this.tab] === null) this.changed(); // the closed tab, shown for the first time
    renderList(this.lists, this.more, this.tab, this.conversation.id);
    const unread = this.conversations.reduce((sum, c) => sum + (c.unread || 0), 0);
    document.title = unread ? `(${unread}) ${t("appName")}` : t("appName");
  }

  /** Each loaded tab again, as many rows as it shows (at least its first page). */
  async loadConversations() {
    const before = new Map(this.conversations.map((c) => [c.id, c]));
    const tabs = TABS.filter((tab) => this.lists[tab] !== null || tab === this.tab);
    const pages = await Promise.all(tabs.map((tab) => {
      const limit = Math.min(200, Math.max(PAGE[tab], (this.lists[tab] || []).length));
      return api.conversations(tab, limit).then((answer) => [tab, answer.conversations || [], limit]);
    }));
    for (const [tab, rows, limit] of pages) {
      this.lists[tab] = rows;
      this.more[tab] = rows.length >= limit;
    }
    if (this.loaded) this.notifyNew(before); // the first load of a session is not news
    this.loaded = true;
    const open = this.conversation.id && this.find(this.conversation.id);
    if (open) await this.conversation.show(open);
    this.renderList();
  }

  /** The next page of the tab shown, after its oldest row. */
  async loadMore() {
    const tab = this.tab;
    const shown = this.lists[tab] || [];
    const last = shown.length ? shown[shown.length - 1].last_message : null;
    const { conversations = [] } = await api.conversations(tab, PAGE[tab], last && last.id);
    const known = new Set(shown.map((c) => c.id));
    this.lists[tab] = [...shown, ...conversations.filter((c) => !known.has(c.id))];
    this.more[tab] = conversations.length >= PAGE[tab];
    this.renderList();
  }

  /** After an action or an event: the list again; calls within a moment share one load. */
  changed() {
    if (!this.pending) {
      this.pending = new Promise((resolve) => setTimeout(() => {
        this.pending = null; // a change during the load asks for another one
        this.loadConversations().catch((error) => this.fail(error)).then(resolve);
      }, REFRESH_DEBOUNCE_MS));
    }
    return this.pending;
  }

  /** The open conversation moved (replied: waiting; closed; reopened): the list shows its tab. */
  statusChanged(conversation) {
    this.tab = tabOf(conversation);
    this.renderList();
  }

  onEvent(event) {
    if (event.type === "agents" || event.type === "canned") {
      if (!$("admin-pane").hidden) this.admin.show();
      return;
    }
    // A `reset` (the page was away longer than the events are kept) names no conversation: reload all.
    const id = event.conversation_id;
    if (this.conversation.id && (!id || id === this.conversation.id) && event.type !== "read") {
      this.conversation.refresh().catch((error) => this.fail(error));
    }
    this.changed();
  }

  onLiveMode(mode) {
    const banner = $("live-status");
    banner.dataset.mode = mode;
    banner.textContent = mode === "offline" ? t("offline") : mode === "polling" ? t("polling") : t("live");
  }

  fail(error) {
    if (error && error.status === 401) return;
    const status = $("app-error");
    status.textContent = t("failed", error.message || String(error));
    clearTimeout(this.failTimer);
    this.failTimer = setTimeout(() => (status.textContent = ""), 8000);
  }

  // -- notifications ------------------------------------------------------------------------------
  offerNotifications() {
    const asked = localStorage.getItem("inbox.notify-asked");
    $("notify-bar").hidden = !("Notification" in window) || Notification.permission !== "default" || Boolean(asked);
  }

  notifyNew(before) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    for (const c of this.conversations) {
      const previous = before.get(c.id);
      const fresh = (c.unread || 0) > ((previous && previous.unread) || 0);
      const watching = c.id === this.conversation.id && document.visibilityState === "visible";
      if (fresh && !watching) {
        const note = new Notification(`${t("notifyTitle")}: ${userLabel(c)}`, {
          body: preview(c.last_message), tag: `inbox:${c.id}`,
        });
        note.onclick = () => {
          window.focus();
          location.hash = `#/c/${encodeURIComponent(c.id)}`;
          note.close();
        };
      }
    }
  }

  // -- wiring -------------------------------------------------------------------------------------
  wire() {
    $("login-form").addEventListener("submit", (event) => this.login(event));
    $("logout").addEventListener("click", () => this.logout());
    window.addEventListener("hashchange", () => this.route());
    for (const name of TABS) {
      $(`tab-${name}`).addEventListener("click", () => {
        this.tab = name;
        this.renderList();
      });
    }
    $("list-more").addEventListener("click", () => this.loadMore().catch((error) => this.fail(error)));
    $("tabs").addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      this.tab = TABS[(TABS.indexOf(this.tab) + step + TABS.length) % TABS.length];
      this.renderList();
      $(`tab-${this.tab}`).focus();
    });
    $("notify-yes").addEventListener("click", async () => {
      localStorage.setItem("inbox.notify-asked", "1");
      $("notify-bar").hidden = true;
      await Notification.requestPermission();
    });
    $("notify-no").addEventListener("click", () => {
      localStorage.setItem("inbox.notify-asked", "1");
      $("notify-bar").hidden = true;
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.conversation.id) this.conversation.refresh().catch(() => {});
    });
    setInterval(() => {
      if (!this.agent) return;
      this.renderList();
      if (this.conversation.conversation) this.conversation.renderHeader();
    }, TICK_MS);
  }
}

new App().boot();
