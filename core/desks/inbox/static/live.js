// Live updates: the event stream (Server-Sent Events) while it works; polling the same events as JSON
// where the stream cannot be held (the cloud function) or keeps failing.
import { api } from "./client.js";

const POLL_MS = 3000;
const FAILURES_BEFORE_POLLING = 3; // errors in a row without the stream ever opening in between

/**
 * Start listening. `onEvent(event)` gets each change (parsed JSON); `onMode(mode)` hears
 * "live", "polling" or "offline"; `canStream` is false where the server said it cannot stream.
 * Returns a function that stops everything.
 */
export function listen(onEvent, onMode, canStream = true) {
  let last = null;
  let source = null;
  let timer = null;
  let failures = 0;
  let opened = false;
  let stopped = false;

  function deliver(raw, id) {
    if (id) last = id;
    let event;
    try {
      event = JSON.parse(raw);
    } catch {
      return; // not JSON: nothing this page knows
    }
    onEvent(event);
  }

  function stream() {
    source = new EventSource(api.eventsUrl(last), { withCredentials: true });
    source.onopen = () => {
      failures = 0;
      opened = true;
      onMode("live");
    };
    source.onmessage = (message) => deliver(message.data, message.lastEventId);
    source.onerror = () => {
      // The server ends each stream after a while and the browser reconnects (sending Last-Event-ID).
      // A stream that never opened, errors in a row, or one the browser gives up on: poll instead.
      failures += 1;
      if (!opened || source.readyState === EventSource.CLOSED || failures >= FAILURES_BEFORE_POLLING) {
        source.close();
        source = null;
        poll();
      } else if (failures > 1) {
        onMode("offline");
      }
    };
  }

  async function poll() {
    if (stopped) return;
    try {
      const answer = await api.pollEvents(last);
      for (const event of answer.events || []) onEvent(event);
      last = String(answer.last_id);
      onMode("polling");
    } catch (error) {
      if (error.status === 401) return; // the session is gone; the page shows the login form
      onMode("offline");
    }
    timer = setTimeout(poll, POLL_MS);
  }

  if (canStream && typeof EventSource === "function") stream();
  else poll();

  return () => {
    stopped = true;
    if (source) source.close();
    clearTimeout(timer);
  };
}
