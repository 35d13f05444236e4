// The conversation list: three tabs (open, waiting for the user, closed), each row with the user,
// the last message, its time, the unread count and the time left to reply.
import { $, h } from "./dom.js";
import { canReply, clock, preview, userLabel, windowText } from "./format.js";
import { t } from "./i18n.js";

export const TABS = ["open", "waiting", "closed"];

/** The tab a conversation belongs to. */
export function tabOf(conversation) {
  return TABS.includes(conversation.status) ? conversation.status : "open";
}

/**
 * Render the tab counts and the rows of `tab`. `lists` maps a tab to its loaded conversations (null:
 * not loaded yet), `more` to whether older ones exist; `selected` is the open conversation's id.
 */
export function renderList(lists, more, tab, selected) {
  for (const name of TABS) {
    const button = $(`tab-${name}`);
    const inTab = lists[name] || [];
    const unread = inTab.reduce((sum, c) => sum + (c.unread || 0), 0);
    button.setAttribute("aria-selected", String(name === tab));
    button.tabIndex = name === tab ? 0 : -1;
    const count = button.querySelector(".count");
    count.textContent = inTab.length ? `${inTab.length}${more[name] ? "+" : ""}` : "";
    count.classList.toggle("has-unread", unread > 0);
    count.title = unread ? t("unread", unread) : "";
  }
  const rows = (lists[tab] || []).map((c) => row(c, c.id === selected));
  $("conversation-list").replaceChildren(...rows);
  $("list-empty").hidden = rows.length > 0 || lists[tab] === null;
  $("list-more").hidden = !more[tab];
}

function row(conversation, current) {
  const last = conversation.last_message;
  const closed = !canReply(conversation);
  return h("li", {},
    h("a", {
      class: `conversation${conversation.unread ? " has-unread" : ""}`, href: `#/c/${encodeURIComponent(conversation.id)}`,
      "aria-current": current ? "true" : null, dataset: { id: conversation.id },
    },
    h("span", { class: "who" }, userLabel(conversation)),
    h("time", { class: "when" }, clock(last && last.at)),
    h("span", { class: "preview" }, last && last.direction === "out" ? `${t("you")}: ` : "", preview(last)),
    h("span", { class: "badges" },
      conversation.unread ? h("span", { class: "unread", "aria-label": t("unread", conversation.unread) },
        String(conversation.unread)) : null,
      h("span", { class: `window${closed ? " closed" : ""}` }, windowText(conversation)),
      conversation.assignee ? h("span", { class: "assignee" }, conversation.assignee) : null)));
}
