// WS /ws for one meeting, reconnecting with backoff. The key travels as a subprotocol, not in the URL.
import { session } from "./session.js";

export class LiveFeed {
  /** onEvent(event) for every server message; onState("connecting"|"open"|"closed"|"denied"). */
  constructor(platform, nativeId, { onEvent, onState }) {
    this.meeting = { platform, native_id: nativeId };
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.delay = 500;
    this.stopped = false;
    this.timer = null;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.onState("connecting");
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/ws`, ["vexa.v1", `vexa.key.${session.apiKey || ""}`]);
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.delay = 500;
      this.onState("open");
      socket.send(JSON.stringify({ action: "subscribe", meetings: [this.meeting] }));
      this.ping = setInterval(() => socket.readyState === 1 && socket.send('{"action":"ping"}'), 25000);
    });
    socket.addEventListener("message", (msg) => {
      let event;
      try { event = JSON.parse(msg.data); } catch { return; }
      this.onEvent(event);
    });
    socket.addEventListener("close", (ev) => {
      clearInterval(this.ping);
      if (this.stopped) return;
      if (ev.code === 4401 || ev.code === 4403) {
        this.onState("denied");
        return;
      }
      this.onState("closed");
      this.retry();
    });
  }

  retry() {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 10000);
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ping);
    if (this.socket && this.socket.readyState <= 1) this.socket.close(1000);
  }
}
