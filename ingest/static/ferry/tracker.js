/* Ferry's browser tracker: identify, page views and events from an account's own pages.
 *
 *   <script src="https://ferry.example.com/static/ferry/tracker.js"
 *           data-key="pk_…" data-endpoint="https://ferry.example.com" defer></script>
 *
 * Calls are queued in localStorage and sent in batches. If Ferry cannot be reached the queue
 * is kept and retried with backoff, also on later page loads; every message carries a
 * messageId, so sending one twice is harmless. The key is public: it can only send.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var key = script && script.getAttribute("data-key");
  var endpoint = ((script && script.getAttribute("data-endpoint")) || "").replace(/\/$/, "");
  var autoPage = !script || script.getAttribute("data-auto-page") !== "false";
  var QUEUE = "ferry_queue", ANONYMOUS = "ferry_anonymous_id", USER = "ferry_user_id";
  var MAX_QUEUE = 1000, BATCH = 100;
  var retryDelay = 1000, timer = null, sending = false;

  function store(name, value) {
    try {
      if (value === undefined) return window.localStorage.getItem(name);
      window.localStorage.setItem(name, value);
    } catch (e) { return null; }
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }
  function queue() {
    try { return JSON.parse(store(QUEUE) || "[]"); } catch (e) { return []; }
  }
  function save(messages) { store(QUEUE, JSON.stringify(messages.slice(-MAX_QUEUE))); }
  function anonymousId() {
    var id = store(ANONYMOUS);
    if (!id) { id = uuid(); store(ANONYMOUS, id); }
    return id;
  }

  function enqueue(message) {
    message.messageId = uuid();
    message.timestamp = new Date().toISOString();
    message.anonymousId = anonymousId();
    var userId = store(USER);
    if (userId && !message.userId) message.userId = userId;
    message.context = { page: { url: location.href, path: location.pathname, referrer: document.referrer, title: document.title },
                        userAgent: navigator.userAgent, library: { name: "ferry-tracker", version: "1" } };
    var messages = queue();
    messages.push(message);
    save(messages);
    schedule(0);
  }

  function schedule(delay) {
    if (timer) return;
    timer = setTimeout(function () { timer = null; flush(); }, delay);
  }

  function flush() {
    if (sending || !key || !endpoint) return;
    var messages = queue();
    if (!messages.length) return;
    var batch = messages.slice(0, BATCH);
    sending = true;
    fetch(endpoint + "/track/browser", {
      method: "POST",
      // text/plain keeps this a simple request: no CORS preflight, works from any origin.
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify({ key: key, batch: batch }),
      keepalive: true,
      credentials: "omit"
    }).then(function (response) {
      sending = false;
      if (response.ok || (response.status >= 400 && response.status < 500 && response.status !== 429)) {
        // Sent, or refused for good (a bad message): either way it leaves the queue.
        var ids = {};
        batch.forEach(function (m) { ids[m.messageId] = true; });
        save(queue().filter(function (m) { return !ids[m.messageId]; }));
        retryDelay = 1000;
        if (queue().length) schedule(0);
      } else {
        retry();
      }
    }, function () { sending = false; retry(); });
  }

  function retry() {
    retryDelay = Math.min(retryDelay * 2, 60000);
    schedule(retryDelay);
  }

  var ferry = {
    identify: function (userId, traits) {
      if (userId) store(USER, String(userId));
      enqueue({ type: "identify", userId: userId ? String(userId) : undefined, traits: traits || {} });
    },
    track: function (event, properties) {
      enqueue({ type: "track", event: event, properties: properties || {} });
    },
    page: function (name, properties) {
      properties = properties || {};
      properties.url = properties.url || location.href;
      properties.path = properties.path || location.pathname;
      properties.title = properties.title || document.title;
      enqueue({ type: "page", name: name || location.pathname, properties: properties });
    },
    reset: function () {
      try { localStorage.removeItem(USER); localStorage.removeItem(ANONYMOUS); } catch (e) {}
    },
    flush: flush
  };
  window.ferry = ferry;
  window.addEventListener("online", function () { retryDelay = 1000; schedule(0); });
  if (autoPage) ferry.page();
  else schedule(0);
})();
