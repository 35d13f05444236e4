// Small formatting shared by the list and the conversation: names, previews, times, the reply window.
import { LOCALE, t } from "./i18n.js";

/** A short label for a conversation's user: the openid, shortened in the middle when long. */
export function userLabel(conversation) {
  const id = conversation.openid || conversation.id || "";
  return id.length > 18 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

/** One line that stands for a message in the list. */
export function preview(message) {
  if (!message) return "";
  if (typeof message === "string") return message;
  if (message.type === "image") return t("picturePreview");
  if (message.type === "session") return t("userOpened", sessionFrom(message));
  return message.text || "";
}

/** The SessionFrom of a `session` message (the desk keeps it as "[user opened the chat: <from>]"). */
export function sessionFrom(message) {
  const match = /^\[user opened the chat(?:: (.*))?\]$/s.exec(message.text || "");
  return match ? match[1] || "" : message.text || "";
}

/** Seconds since the epoch -> "14:05" today, "3/12 14:05" otherwise. */
export function clock(at) {
  if (!at) return "";
  const date = new Date(at * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString(LOCALE, { month: "numeric", day: "numeric" })} ${time}`;
}

/** Whole hours and minutes left until `until` (epoch seconds), or null when it has passed. */
export function timeLeft(until, now = Date.now() / 1000) {
  const seconds = Math.floor((until || 0) - now);
  if (seconds <= 0) return null;
  return { hours: Math.floor(seconds / 3600), minutes: Math.floor((seconds % 3600) / 60) };
}

/** Whether an agent can reply now: the API says so and the window has not run out since. */
export function canReply(conversation) {
  return Boolean(conversation.can_reply) && timeLeft(conversation.window_until) !== null;
}

/** The reply window in words: long ("3 h 5 min left to reply") or short ("3 h left"); "cannot reply". */
export function windowText(conversation, long = false) {
  const left = canReply(conversation) ? timeLeft(conversation.window_until) : null;
  if (!left) return t("cannotReply");
  return t(long ? "hoursLeft" : "hoursLeftShort", left.hours, left.minutes);
}
