// Admin screens: agents (add, disable, enable), canned replies (add, edit, delete), and the dead
// letters of every desk with a retry button.
import { api } from "./client.js";
import { $, h } from "./dom.js";
import { clock } from "./format.js";
import { t } from "./i18n.js";

export class AdminView {
  constructor(app) {
    this.app = app;
    this.editing = null; // the canned reply being edited
    this.wire();
  }

  async show() {
    await Promise.all([this.loadAgents(), this.loadCanned(), this.loadDead()]);
  }

  async guarded(call, status = null) {
    try {
      await call();
      return true;
    } catch (error) {
      if (status) status.textContent = t("failed", error.message);
      else this.app.fail(error);
      return false;
    }
  }

  async loadAgents() {
    await this.guarded(async () => {
      const { agents = [] } = await api.agents();
      $("agent-rows").replaceChildren(...agents.map((agent) => {
        const active = !agent.disabled;
        const self = agent.name === this.app.agent.name;
        return h("tr", {},
          h("td", {}, agent.name),
          h("td", {}, agent.admin ? t("agentAdmin") : ""),
          h("td", { class: active ? "" : "muted" }, t(active ? "agentActive" : "agentDisabled")),
          h("td", {}, self ? null : h("button", {
            type: "button", class: "secondary",
            onclick: () => this.guarded(() => api.setAgentActive(agent.name, !active)).then(() => this.loadAgents()),
          }, t(active ? "disable" : "enable"))));
      }));
    });
  }

  async loadCanned() {
    await this.guarded(async () => {
      const { canned = [] } = await api.canned();
      $("canned-rows").replaceChildren(...canned.map((item) => h("li", {},
        h("div", { class: "canned-text" }, h("strong", {}, item.title), h("span", {}, item.text)),
        h("div", { class: "row-actions" },
          h("button", { type: "button", class: "secondary", onclick: () => this.editCanned(item) }, t("edit")),
          h("button", {
            type: "button", class: "secondary danger",
            onclick: () => this.guarded(() => api.deleteCanned(item.id)).then(() => this.loadCanned()),
          }, t("delete"))))));
    });
  }

  async loadDead() {
    await this.guarded(async () => {
      const { dead = [] } = await api.deadLetters();
      $("dead-rows").replaceChildren(...dead.map((letter) => h("tr", {},
        h("td", {}, letter.kind),
        h("td", { class: "wrap" }, letter.lane),
        h("td", {}, String(letter.attempts)),
        h("td", { class: "wrap" }, letter.error || ""),
        h("td", {}, clock(letter.first_at)),
        h("td", {}, h("button", {
          type: "button", class: "secondary",
          onclick: async (event) => {
            event.target.disabled = true;
            if (await this.guarded(() => api.retryDead(letter.id), $("dead-status"))) {
              $("dead-status").textContent = t("retried");
              await this.loadDead();
            }
            event.target.disabled = false;
          },
        }, t("retry"))))));
      $("dead-empty").hidden = dead.length > 0;
      $("dead-table").hidden = dead.length === 0;
    });
  }

  editCanned(item) {
    this.editing = item;
    $("canned-form-title").textContent = t("editCanned");
    $("canned-title").value = item.title;
    $("canned-text").value = item.text;
    $("canned-cancel").hidden = false;
    $("canned-title").focus();
  }

  resetCannedForm() {
    this.editing = null;
    $("canned-form-title").textContent = t("addCanned");
    $("canned-form").reset();
    $("canned-cancel").hidden = true;
  }

  wire() {
    $("agent-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = $("agent-name").value.trim();
      const status = $("agent-status");
      status.textContent = "";
      await this.guarded(async () => {
        const answer = await api.addAgent(name, $("agent-password").value, $("agent-admin").checked);
        $("agent-form").reset();
        if (answer.password) status.textContent = t("generatedPassword", name, answer.password);
        await this.loadAgents();
      }, status);
    });
    $("canned-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const title = $("canned-title").value.trim();
      const text = $("canned-text").value;
      const editing = this.editing;
      const saved = await this.guarded(
        () => (editing ? api.editCanned(editing.id, title, text) : api.addCanned(title, text)), $("canned-status"));
      if (saved) {
        $("canned-status").textContent = "";
        this.resetCannedForm();
        await this.loadCanned();
      }
    });
    $("canned-cancel").addEventListener("click", () => this.resetCannedForm());
  }
}
