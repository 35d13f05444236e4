// The inbox's JSON API (docs/inbox.md), the only server the page talks to. Every state-changing call
// carries the session's CSRF token in X-CSRF-Token; a 401 anywhere means the session is gone.

const BASE = "/inbox/api";
let csrfToken = null;
let onSessionLost = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function setCsrfToken(token) {
  csrfToken = token;
}

export function whenSessionLost(callback) {
  onSessionLost = callback;
}

async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  let response;
  try {
    response = await fetch(BASE + path, {
      method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, error.message);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith("/login") && !path.startsWith("/setup")) onSessionLost();
    throw new ApiError(response.status, answer.error || `HTTP ${response.status}`);
  }
  return answer;
}

const conversation = (id) => `/conversations/${encodeURIComponent(id)}`;

export const api = {
  session: () => call("GET", "/me"),
  login: (name, password) => call("POST", "/login", { name, password }),
  setup: (token, name, password) => call("POST", "/setup", { token, name, password }),
  logout: () => call("POST", "/logout", {}),

  conversations: (status, limit, before) =>
    call("GET", `/conversations?status=${status}&limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ""}`),
  conversation: (id) => call("GET", conversation(id)),
  messages: (id, before) => call("GET", `${conversation(id)}/messages${before ? `?before=${before}` : ""}`),
  reply: (id, message) => call("POST", `${conversation(id)}/reply`, { client_id: crypto.randomUUID(), ...message }),
  note: (id, text) => call("POST", `${conversation(id)}/note`, { text }),
  read: (id) => call("POST", `${conversation(id)}/read`, {}),
  assignToMe: (id) => call("POST", `${conversation(id)}/assign`, { agent: "me" }),
  close: (id) => call("POST", `${conversation(id)}/close`, {}),
  reopen: (id) => call("POST", `${conversation(id)}/reopen`, {}),

  agents: () => call("GET", "/agents"),
  addAgent: (name, password, admin) => call("POST", "/agents", { name, password: password || undefined, admin }),
  setAgentActive: (name, active) => call("POST", `/agents/${encodeURIComponent(name)}/${active ? "enable" : "disable"}`, {}),

  canned: () => call("GET", "/canned"),
  addCanned: (title, text) => call("POST", "/canned", { title, text }),
  editCanned: (id, title, text) => call("PUT", `/canned/${encodeURIComponent(id)}`, { title, text }),
  deleteCanned: (id) => call("DELETE", `/canned/${encodeURIComponent(id)}`),

  deadLetters: () => call("GET", "/dead"),
  retryDead: (id) => call("POST", `/dead/${encodeURIComponent(id)}/retry`, {}),

  eventsUrl: (after) => `${BASE}/events${after ? `?after=${encodeURIComponent(after)}` : ""}`,
  pollEvents: (after) => call("GET", `/events?wait=0${after ? `&after=${encodeURIComponent(after)}` : ""}`),
};
