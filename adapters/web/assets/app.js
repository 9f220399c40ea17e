/*
 * rtchat page: plain JS, no framework, no build step.
 *
 * STOMP client: @stomp/stompjs 7.5.0 (Apache-2.0), vendored unmodified from
 * node_modules/@stomp/stompjs/bundles/stomp.umd.min.js as /assets/stomp.umd.min.js
 * (global `StompJs`). To upgrade: bump the version in e2e/browser/package.json,
 * `npm install --prefix e2e/browser`, copy the bundle again and update this line.
 *
 * Contract (docs/protocol.md): HTTP answers are envelopes
 * {success, response, error: {message}|null, type}; STOMP over WebSocket at /ws, or over
 * WebTransport where GET /webtransport says (transport.js: the transport switch).
 * Message text is only ever put in the DOM through textContent.
 */
(function () {
  'use strict';

  var TOKEN_KEY = 'rtchat.token';
  var PAGE_SIZE = 10;
  var MAX_LEN = 2000;
  var NEAR_BOTTOM_PX = 80;
  var LOAD_OLDER_AT_PX = 60;

  // ---- DOM ---------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  var el = {
    scroller: $('scroller'),
    list: $('messages'),
    historyState: $('history-state'),
    alert: $('new-message-alert'),
    form: $('composer-form'),
    composer: $('composer'),
    send: $('send'),
    count: $('count'),
    online: $('online'),
    status: $('status'),
    meName: $('me-name'),
    meTag: $('me-tag'),
    meAvatar: $('me-avatar'),
    toasts: $('toasts'),
    roomSelect: $('room-select'),
    newRoom: $('new-room'),
    newRoomForm: $('new-room-form'),
    newRoomName: $('new-room-name'),
    newRoomCancel: $('new-room-cancel'),
    transport: $('transport'),
    transportSelect: $('transport-select')
  };

  // ---- state ---------------------------------------------------------------
  var roomId = readRoomFromUrl();
  var token = null;
  var me = { randId: '', sub: '' };
  var byId = new Map();          // message id -> <li>
  var newestId = null;           // highest id shown
  var newestSeq = null;          // highest seq shown (the room log's position, for since-seq)
  var knownEpoch = null;         // the server's log epoch the shown ids and seqs belong to
  var oldestId = null;           // lowest id shown
  var historyLoaded = false;     // first page fetched (successfully)
  var historyExhausted = false;  // no older messages on the server
  var loadingOlder = false;
  var client = null;
  var everConnected = false;
  var tokenSuspect = false;      // re-check the token with /init before the next connect
  var connectingWith = null;     // the token the (re)connect under way presents
  var sessionExp = null;         // `exp` of the token the open STOMP session runs on
  var refreshTimer = null;       // when the token is refreshed next
  var refreshRetry = 0;          // failed refreshes in a row (for the back-off)
  var unseenFrom = null;         // name in the "new message" alert
  var TRANSPORT_KEY = 'rtchat.transport';
  var transportSetting = readTransportSetting(); // "auto" | "websocket" | "webtransport"
  var transport = { kind: null, rtt: null, lastClose: null, note: '', streams: null, socket: null };
  var wtUnreachable = false;     // "auto" gave up on WebTransport (it never opened)
  var rttTimer = null;
  var rttProbe = 0;

  function readRoomFromUrl() {
    var r = new URLSearchParams(location.search).get('room');
    r = r ? r.trim() : '';
    return r || 'lobby';
  }

  // ---- small helpers -------------------------------------------------------
  function toast(text, kind) {
    var t = document.createElement('div');
    t.className = 'toast' + (kind ? ' ' + kind : '');
    t.setAttribute('data-testid', 'toast');
    t.textContent = String(text);
    el.toasts.appendChild(t);
    setTimeout(function () { t.classList.add('leaving'); }, 3600);
    setTimeout(function () { t.remove(); }, 4000);
  }

  function setStatus(state, label) {
    el.status.setAttribute('data-state', state);
    el.status.textContent = label;
    document.body.setAttribute('data-connection', state);
  }

  function hashHue(s) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return Math.abs(h) % 360;
  }

  function paintAvatar(node, name, tag) {
    var initial = (name || '?').trim().charAt(0).toUpperCase() || '?';
    node.textContent = initial;
    node.style.setProperty('--hue', String(hashHue(tag || name || '')));
  }

  function decodeJwtPayload(jwt) {
    try {
      var part = String(jwt).split('.')[1];
      part = part.replace(/-/g, '+').replace(/_/g, '/');
      while (part.length % 4) part += '=';
      var bin = atob(part);
      var bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      return null;
    }
  }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return { short: '', full: String(iso || '') };
    var now = new Date();
    var sameDay = d.toDateString() === now.toDateString();
    var time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    var short = sameDay ? time : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
    return { short: short, full: d.toLocaleString() };
  }

  function shortAddress(ip) {
    if (!ip) return '';
    ip = String(ip);
    if (ip.indexOf(':') >= 0) return ip + '::…';
    return /^\d+\.\d+$/.test(ip) ? ip + '.*.*' : ip;
  }

  // ---- token (/init) -------------------------------------------------------
  function storeToken(t) {
    token = t;
    try { localStorage.setItem(TOKEN_KEY, t); } catch (e) { /* private mode */ }
    scheduleRefresh();
    var claims = decodeJwtPayload(t) || {};
    me = { randId: String(claims.randId || ''), sub: String(claims.sub || '') };
    el.meName.textContent = me.randId || 'anonymous';
    el.meTag.textContent = me.sub;
    paintAvatar(el.meAvatar, me.randId, me.sub);
    // Re-mark existing messages (the identity may have been re-issued).
    byId.forEach(function (li) {
      var mine = li.getAttribute('data-tag') === me.sub && me.sub !== '';
      li.setAttribute('data-mine', mine ? 'true' : 'false');
      li.classList.toggle('mine', mine);
      li.classList.toggle('theirs', !mine);
    });
  }

  async function callInit(withToken) {
    var headers = {};
    if (withToken) headers.Authorization = 'Bearer ' + withToken;
    var res = await fetch('/init', { headers: headers, cache: 'no-store' });
    var env = null;
    try { env = await res.json(); } catch (e) { /* not JSON */ }
    return { status: res.status, env: env };
  }

  // Makes sure `token` holds a token the server accepts. Throws on network errors.
  async function ensureToken() {
    var stored = null;
    try { stored = localStorage.getItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    if (stored === 'null' || stored === '') stored = null;
    var r = await callInit(stored);
    if (r.status === 401 || (r.env && r.env.type === 'INVALID_TOKEN')) {
      try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      stored = null;
      r = await callInit(null);
    }
    if (!r.env) throw new Error('/init answered ' + r.status + ' without an envelope');
    var issued = typeof r.env.response === 'string' && r.env.response ? r.env.response : null;
    if (issued) {
      // New token (first visit or EXPIRED_TOKEN) or the same one echoed back.
      storeToken(issued);
    } else if (r.env.success && stored) {
      storeToken(stored);
    } else {
      var msg = r.env.error && r.env.error.message ? r.env.error.message : 'could not get a token';
      throw new Error(msg);
    }
    tokenSuspect = false;
  }

  // ---- token refresh -------------------------------------------------------
  // The server ends a STOMP session when its token expires (ERROR EXPIRED_TOKEN). Before that,
  // at 80% of the token's lifetime, the page gets a new token for the same identity from
  // GET /init?refresh=true, stores it, and SENDs it to /pub/token on the open session, which
  // then lives until the new token's exp. A failed refresh is retried with a back-off.
  var REFRESH_AT = 0.8;
  var MAX_TIMER_MS = 2147483647;  // setTimeout's limit (about 24.8 days)
  var RETRY_MIN_MS = 5000;
  var RETRY_MAX_MS = 5 * 60 * 1000;

  function claimSeconds(t, name) {
    var claims = decodeJwtPayload(t);
    var v = claims ? Number(claims[name]) : NaN;
    return isFinite(v) ? v : null;
  }

  // When to refresh `t` (ms since the epoch), or null when it says nothing about its expiry.
  function refreshDueAt(t) {
    var exp = claimSeconds(t, 'exp');
    if (exp === null) return null;
    var iat = claimSeconds(t, 'iat');
    if (iat === null || iat >= exp) iat = exp - 60;
    return (iat + (exp - iat) * REFRESH_AT) * 1000;
  }

  function scheduleRefresh(delayMs) {
    if (refreshTimer) clearTimeout(refreshTimer);
    refreshTimer = null;
    if (delayMs === undefined) {
      var due = refreshDueAt(token);
      if (due === null) return;
      delayMs = due - Date.now();
    }
    delayMs = Math.max(1000, delayMs);
    // Longer than a timer can count: wake up on the way and look again.
    if (delayMs > MAX_TIMER_MS) {
      refreshTimer = setTimeout(function () { scheduleRefresh(); }, MAX_TIMER_MS);
      return;
    }
    refreshTimer = setTimeout(refreshToken, delayMs);
  }

  function retryRefresh() {
    refreshRetry++;
    var delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * Math.pow(2, refreshRetry - 1));
    // No point in retrying past the expiry: the next (re)connect goes through /init anyway.
    var exp = claimSeconds(token, 'exp');
    if (exp !== null && Date.now() + delay >= exp * 1000) {
      tokenSuspect = true;
      return;
    }
    scheduleRefresh(delay);
  }

  async function refreshToken() {
    refreshTimer = null;
    var mine = claimSeconds(token, 'exp');
    // Another tab of this browser may have refreshed already: use its token.
    var stored = null;
    try { stored = localStorage.getItem(TOKEN_KEY); } catch (e) { /* ignore */ }
    var storedClaims = stored ? decodeJwtPayload(stored) : null;
    if (stored && stored !== token && storedClaims && String(storedClaims.sub || '') === me.sub &&
        mine !== null && Number(storedClaims.exp) > mine && refreshDueAt(stored) > Date.now()) {
      refreshRetry = 0;
      storeToken(stored);
      presentToken();
      return;
    }
    var r;
    try {
      var res = await fetch('/init?refresh=true', {
        headers: { Authorization: 'Bearer ' + token }, cache: 'no-store'
      });
      var env = null;
      try { env = await res.json(); } catch (e) { /* not JSON */ }
      r = { status: res.status, env: env };
    } catch (e) {
      retryRefresh(); // offline: try again later
      return;
    }
    var issued = r.env && typeof r.env.response === 'string' && r.env.response ? r.env.response : null;
    if (issued && (r.env.type === 'SUCCESS_TOKEN_REFRESHED' || r.env.type === 'EXPIRED_TOKEN')) {
      refreshRetry = 0;
      storeToken(issued);
      presentToken();
    } else if (r.status === 401) {
      // Not a token the server accepts any more: the next (re)connect gets a new one.
      tokenSuspect = true;
    } else {
      retryRefresh(); // rate-limited or the server is busy
    }
  }

  // Presents the current token on the open session (SEND /pub/token), if it expires later than
  // the one the session runs on; a session that is not open picks it up when it (re)connects.
  function presentToken() {
    var exp = claimSeconds(token, 'exp');
    if (!client || !client.connected || exp === null || (sessionExp !== null && exp <= sessionExp)) return;
    // Counted as taken at once, so one token is not presented twice (a refused one makes the
    // next connect go through /init: see the error queue).
    sessionExp = exp;
    client.publish({
      destination: '/pub/token',
      headers: { 'content-type': 'text/plain', receipt: 'token-' + newKey() },
      body: token
    });
  }

  // ---- HTTP API ------------------------------------------------------------
  async function api(path, opts) {
    opts = opts || {};
    for (var attempt = 0; attempt < 2; attempt++) {
      var headers = { Authorization: 'Bearer ' + token };
      if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
      var res = await fetch(path, {
        method: opts.method || 'GET',
        headers: headers,
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        cache: 'no-store'
      });
      var env = null;
      try { env = await res.json(); } catch (e) { /* not JSON */ }
      if (res.status === 401 && attempt === 0) {
        await ensureToken();
        continue;
      }
      if (!env || !env.success) {
        var msg = env && env.error && env.error.message ? env.error.message : ('HTTP ' + res.status);
        var err = new Error(msg);
        err.type = env && env.type;
        err.status = res.status;
        throw err;
      }
      return env.response;
    }
  }

  // ---- rendering -----------------------------------------------------------
  function distanceFromBottom() {
    var s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight;
  }
  function isNearBottom() { return distanceFromBottom() < NEAR_BOTTOM_PX; }
  function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
    hideAlert();
  }

  function buildMessage(m) {
    var mine = me.sub !== '' && m.nameTag === me.sub;
    var li = document.createElement('li');
    li.className = 'msg ' + (mine ? 'mine' : 'theirs');
    li.setAttribute('data-testid', 'message');
    li.setAttribute('data-id', String(m.id));
    li.setAttribute('data-mine', mine ? 'true' : 'false');
    li.setAttribute('data-tag', String(m.nameTag || ''));

    var avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    paintAvatar(avatar, String(m.randId || ''), String(m.nameTag || ''));

    var body = document.createElement('div');
    body.className = 'msg-body';

    var meta = document.createElement('div');
    meta.className = 'meta';
    var name = document.createElement('span');
    name.className = 'name';
    name.setAttribute('data-testid', 'message-name');
    name.textContent = String(m.randId || 'anonymous');
    var tag = document.createElement('span');
    tag.className = 'tag';
    tag.setAttribute('data-testid', 'message-tag');
    tag.textContent = String(m.nameTag || '');
    var addr = document.createElement('span');
    addr.className = 'addr';
    addr.setAttribute('data-testid', 'message-addr');
    addr.title = 'Address prefix of the sender';
    addr.textContent = shortAddress(m.ipAddress);
    var t = formatTime(m.createdAt);
    var time = document.createElement('time');
    time.className = 'time';
    time.setAttribute('data-testid', 'message-time');
    time.dateTime = String(m.createdAt || '');
    time.title = t.full;
    time.textContent = t.short;
    meta.append(name, tag, addr, time);

    var bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.setAttribute('data-testid', 'message-text');
    bubble.textContent = String(m.message == null ? '' : m.message); // text, never HTML

    body.append(meta, bubble);
    li.append(avatar, body);
    return li;
  }

  // Inserts a message in id order; returns the new <li>, or null for a duplicate.
  function insertMessage(m) {
    if (!m || m.id == null || byId.has(String(m.id))) return null;
    var id = Number(m.id);
    if (m.seq != null && (newestSeq === null || Number(m.seq) > newestSeq)) newestSeq = Number(m.seq);
    var li = buildMessage(m);
    byId.set(String(m.id), li);
    if (newestId === null || id > newestId) {
      el.list.appendChild(li);
      newestId = id;
    } else {
      // Out of order (rare): find the first shown message with a larger id.
      var next = null;
      var items = el.list.children;
      for (var i = 0; i < items.length; i++) {
        if (Number(items[i].getAttribute('data-id')) > id) { next = items[i]; break; }
      }
      el.list.insertBefore(li, next);
    }
    if (oldestId === null || id < oldestId) oldestId = id;
    return li;
  }

  function updateHistoryState() {
    var s = el.historyState;
    if (historyExhausted) {
      s.textContent = byId.size ? 'Beginning of the conversation' : 'No messages yet. Say hi!';
      s.setAttribute('data-state', 'exhausted');
    } else if (loadingOlder) {
      s.textContent = 'Loading older messages…';
      s.setAttribute('data-state', 'loading');
    } else {
      s.textContent = historyLoaded ? 'Scroll up for older messages' : '';
      s.setAttribute('data-state', historyLoaded ? 'more' : 'idle');
    }
  }

  // Forgets every message shown: the server's log began again (a new epoch).
  function resetRoomView() {
    el.list.replaceChildren();
    byId.clear();
    newestId = null;
    newestSeq = null;
    oldestId = null;
    historyLoaded = false;
    historyExhausted = false;
    hideAlert();
    updateHistoryState();
  }

  // ---- new-message alert -----------------------------------------------
  function showAlert(fromName) {
    unseenFrom = fromName;
    el.alert.textContent = 'New message from ' + fromName + ' ↓';
    el.alert.hidden = false;
  }
  function hideAlert() {
    unseenFrom = null;
    el.alert.hidden = true;
  }
  el.alert.addEventListener('click', function () {
    scrollToBottom();
    el.composer.focus({ preventScroll: true });
  });

  // ---- live messages ---------------------------------------------------------
  function onChatMessage(m) {
    var wasNearBottom = isNearBottom();
    var li = insertMessage(m);
    if (!li) return; // duplicate
    var mine = li.getAttribute('data-mine') === 'true';
    if (mine || wasNearBottom) {
      scrollToBottom();
    } else {
      showAlert(String(m.randId || 'someone'));
    }
    if (historyExhausted && byId.size === 1) updateHistoryState();
  }

  // ---- history (infinite scroll up) ---------------------------------------------
  async function loadInitialHistory() {
    var msgs = await api('/message?roomId=' + encodeURIComponent(roomId) + '&limit=' + PAGE_SIZE);
    msgs = Array.isArray(msgs) ? msgs : [];
    for (var i = msgs.length - 1; i >= 0; i--) insertMessage(msgs[i]);
    historyLoaded = true;
    if (msgs.length < PAGE_SIZE) historyExhausted = true;
    updateHistoryState();
    scrollToBottom();
    await fillViewport();
  }

  // Loads older pages while the list does not overflow (else one could not scroll up).
  async function fillViewport() {
    var guard = 0;
    while (!historyExhausted && el.scroller.scrollHeight <= el.scroller.clientHeight + 2 && guard++ < 20) {
      var before = byId.size;
      await loadOlder();
      if (byId.size === before) break;
    }
  }

  async function loadOlder() {
    if (loadingOlder || historyExhausted || !historyLoaded) return;
    if (oldestId === null) { historyExhausted = true; updateHistoryState(); return; }
    loadingOlder = true;
    updateHistoryState();
    try {
      var msgs = await api('/message/lastMessageId?roomId=' + encodeURIComponent(roomId) +
        '&limit=' + PAGE_SIZE + '&lastMessageId=' + encodeURIComponent(String(oldestId)));
      msgs = Array.isArray(msgs) ? msgs : [];
      var s = el.scroller;
      var heightBefore = s.scrollHeight;
      var topBefore = s.scrollTop;
      for (var i = 0; i < msgs.length; i++) insertMessage(msgs[i]); // newest first: each goes on top
      if (msgs.length < PAGE_SIZE) historyExhausted = true;
      loadingOlder = false;
      updateHistoryState();
      // Keep the reader's position: what was on screen stays where it was.
      s.scrollTop = topBefore + (s.scrollHeight - heightBefore);
    } catch (e) {
      toast('Could not load older messages: ' + e.message, 'error');
    } finally {
      loadingOlder = false;
      updateHistoryState();
    }
  }

  el.scroller.addEventListener('scroll', function () {
    if (el.scroller.scrollTop < LOAD_OLDER_AT_PX) loadOlder();
    if (unseenFrom !== null && isNearBottom()) hideAlert();
  }, { passive: true });

  // ---- STOMP ---------------------------------------------------------------------
  function parseJson(body) {
    try { return JSON.parse(body); } catch (e) { return null; }
  }

  // ---- sends that survive reconnects -------------------------------------------------
  // Each message gets a key (`message-key`); the server stores a key at most once, so a send
  // whose RECEIPT never came (the connection dropped) is simply sent again after reconnecting.
  var unacked = new Map(); // key -> body, in send order
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return 'k' + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function publishKeyed(key, body) {
    client.watchForReceipt(key, function () { unacked.delete(key); });
    client.publish({
      destination: '/pub/chat',
      headers: { 'message-key': key, receipt: key },
      body: body
    });
  }
  function resendUnacked() {
    unacked.forEach(function (body, key) { publishKeyed(key, body); });
  }

  function subscribeAll(c) {
    var channelHeaders = {};
    // Where this page is in the room's log: since-seq when known (gap-free), else since-id.
    if (newestSeq !== null) channelHeaders['since-seq'] = String(newestSeq);
    else if (newestId !== null) channelHeaders['since-id'] = String(newestId);
    c.subscribe('/sub/channel/' + roomId, function (frame) {
      var m = parseJson(frame.body);
      if (m) onChatMessage(m);
    }, channelHeaders);
    c.subscribe('/sub/presence/' + roomId, function (frame) {
      var p = parseJson(frame.body);
      if (p && p.count != null && (p.roomId == null || p.roomId === roomId)) {
        el.count.textContent = String(p.count);
      }
    });
    c.subscribe('/sub/channel/entry', function (frame) {
      var n = String(frame.body).trim();
      if (/^\d+$/.test(n)) el.online.textContent = n;
    });
    c.subscribe('/user/queue/errors', function (frame) {
      var env = parseJson(frame.body);
      var msg = env && env.error && env.error.message ? env.error.message : String(frame.body);
      var failed = frame.headers && frame.headers['receipt-id'];
      // A send refused for good (empty, too long, unknown room...) is not retried; one the
      // server could not store in time is, after the next reconnect or send.
      if (failed && !(env && (env.type === 'NOT_STORED' || env.type === 'UNAVAILABLE'))) unacked.delete(failed);
      // A refused token refresh: the session ends at its token's expiry, and the next connect
      // goes through /init.
      if (failed && String(failed).indexOf('token-') === 0) tokenSuspect = true;
      toast(msg, 'error');
    });
  }

  // ---- transport: WebSocket or WebTransport, and the round trip -----------------
  function readTransportSetting() {
    var valid = ['auto', 'websocket', 'webtransport'];
    var fromUrl = new URLSearchParams(location.search).get('transport');
    if (valid.indexOf(fromUrl) >= 0) return fromUrl;
    try {
      var kept = localStorage.getItem(TRANSPORT_KEY);
      if (valid.indexOf(kept) >= 0) return kept;
    } catch (e) { /* storage off */ }
    return 'auto';
  }

  function showTransport() {
    var name = transport.kind === 'webtransport' ? 'WT' : transport.kind === 'websocket' ? 'WS' : '–';
    var text = name + (transport.rtt !== null ? ' · ' + Math.round(transport.rtt) + ' ms' : '');
    el.transport.textContent = text;
    el.transport.setAttribute('data-kind', transport.kind || '');
    el.transport.title = (transport.kind === 'webtransport' ? 'WebTransport' + (transport.streams === 'per-subscription' ? ' (a stream per subscription)' : '') : 'WebSocket') + (transport.rtt !== null ? ', last receipt round trip ' + transport.rtt.toFixed(1) + ' ms' : '') +
      (transport.note ? ' (WebTransport not used: ' + transport.note + ')' : '');
  }

  // A receipt's round trip: a SUBSCRIBE with a receipt to the entry count (a session is
  // counted once however many subscriptions it has), dropped as soon as it is answered.
  function probeRtt() {
    if (!client || !client.connected) return;
    var probe = client;
    var id = 'rtt-' + (++rttProbe);
    var sentAt = performance.now();
    var subscription = null;
    probe.watchForReceipt(id, function () {
      transport.rtt = performance.now() - sentAt;
      showTransport();
      if (subscription && probe.connected) subscription.unsubscribe();
    });
    subscription = probe.subscribe('/sub/channel/entry', function () {}, { id: id, receipt: id });
  }

  function startRttProbes() {
    clearInterval(rttTimer);
    probeRtt();
    rttTimer = setInterval(probeRtt, 5000);
  }

  var chosen = null; // the transport the (re)connect under way uses

  function socketFor(choice) {
    if (choice.kind === 'webtransport') {
      var socket = new RtchatTransport.WtSocket(choice.url, choice.hashes, function (info) {
        // How a session that was open ended (a failed attempt says nothing about that).
        if (socket.opened) transport.lastClose = info;
        if (!socket.opened && transportSetting === 'auto') wtUnreachable = true;
      });
      transport.socket = socket;
      return socket;
    }
    transport.socket = null;
    return new WebSocket(choice.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']);
  }

  el.transportSelect.value = transportSetting;
  el.transportSelect.addEventListener('change', async function () {
    transportSetting = el.transportSelect.value;
    wtUnreachable = false;
    try { localStorage.setItem(TRANSPORT_KEY, transportSetting); } catch (e) { /* storage off */ }
    if (client) await client.deactivate();
    connect();
  });

  function connect() {
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var wsUrl = proto + location.host + '/ws';
    client = new StompJs.Client({
      webSocketFactory: function () { return socketFor(chosen); },
      connectHeaders: { Authorization: 'Bearer ' + token },
      reconnectDelay: 1000,
      maxReconnectDelay: 15000,
      reconnectTimeMode: StompJs.ReconnectionTimeMode ? StompJs.ReconnectionTimeMode.EXPONENTIAL : undefined,
      connectionTimeout: 10000,
      // heart-beats: stompjs defaults (10000/10000); the server negotiates.
      beforeConnect: async function (c) {
        setStatus(everConnected ? 'reconnecting' : 'connecting', everConnected ? 'reconnecting…' : 'connecting…');
        if (tokenSuspect) {
          try { await ensureToken(); } catch (e) { /* server down: try the old token, retry later */ }
        }
        connectingWith = token;
        c.connectHeaders = { Authorization: 'Bearer ' + token };
        var setting = transportSetting === 'auto' && wtUnreachable ? 'websocket' : transportSetting;
        chosen = await RtchatTransport.choose(setting, wsUrl);
        transport.kind = chosen.kind;
        transport.rtt = null;
        transport.note = chosen.note;
        transport.streams = chosen.streams || null;
        if (transportSetting === 'webtransport' && chosen.kind !== 'webtransport') {
          toast('WebTransport is not available (' + chosen.note + '): using WebSocket', 'error');
        }
        showTransport();
      },
      onConnect: function (frame) {
        var first = !everConnected;
        everConnected = true;
        // The server's log epoch: another one means its store was wiped or replaced, so the
        // ids and seqs shown mean nothing there any more. Start the room over.
        var epoch = frame && frame.headers ? frame.headers.epoch : null;
        var newLog = Boolean(epoch && knownEpoch && epoch !== knownEpoch);
        if (epoch) knownEpoch = epoch;
        if (newLog) resetRoomView();
        setStatus('connected', 'live');
        startRttProbes();
        sessionExp = claimSeconds(connectingWith, 'exp');
        subscribeAll(client);
        // Refreshed while connecting: the session runs on the older token.
        presentToken();
        resendUnacked();
        if ((first && !historyLoaded) || newLog) {
          // The first history fetch failed earlier, or the log began again: (re)load it.
          loadInitialHistory().catch(function (e) { toast('Could not load messages: ' + e.message, 'error'); });
        }
      },
      onStompError: function (frame) {
        // Bad or expired token (or another fatal error): the server closes the socket.
        tokenSuspect = true;
        var msg = (frame.headers && frame.headers.message) || 'connection refused';
        if (!/token|auth/i.test(msg + ' ' + frame.body)) toast('Server: ' + msg, 'error');
      },
      onWebSocketClose: function () {
        clearInterval(rttTimer);
        if (client && client.active) setStatus('reconnecting', 'reconnecting…');
        else setStatus('offline', 'offline');
        // A socket that closes before CONNECTED may be a rejected token too.
        tokenSuspect = true;
      },
      onWebSocketError: function () { tokenSuspect = true; }
    });
    client.activate();
  }

  function sendMessage() {
    var text = el.composer.value.trim();
    if (!text) return;
    if (text.length > MAX_LEN) {
      toast('A message is at most ' + MAX_LEN + ' characters.', 'error');
      return;
    }
    var key = newKey();
    var body = JSON.stringify({ roomId: roomId, message: text });
    unacked.set(key, body);
    if (client && client.connected) publishKeyed(key, body);
    else toast('Not connected yet: your message goes out when the connection is back.', 'info');
    el.composer.value = '';
    autosize();
    scrollToBottom();
  }

  function autosize() {
    el.composer.style.height = 'auto';
    el.composer.style.height = Math.min(el.composer.scrollHeight, 160) + 'px';
  }

  el.form.addEventListener('submit', function (e) {
    e.preventDefault();
    sendMessage();
    el.composer.focus();
  });
  el.composer.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage();
    }
  });
  el.composer.addEventListener('input', autosize);

  // ---- rooms -------------------------------------------------------------------
  function roomUrl(id) { return id === 'lobby' ? '/' : '/?room=' + encodeURIComponent(id); }

  async function loadRooms() {
    var rooms = [];
    try { rooms = await api('/rooms'); } catch (e) { rooms = []; }
    if (!Array.isArray(rooms)) rooms = [];
    if (!rooms.some(function (r) { return r && r.roomId === roomId; })) {
      rooms.unshift({ roomId: roomId, name: roomId });
    }
    el.roomSelect.textContent = '';
    rooms.forEach(function (r) {
      if (!r || r.roomId == null) return;
      var opt = document.createElement('option');
      opt.value = String(r.roomId);
      var label = String(r.name || r.roomId);
      // The current room's live count is in the header; others show theirs when not empty.
      if (r.roomId !== roomId && Number(r.count) > 0) label += ' (' + r.count + ')';
      opt.textContent = '# ' + label;
      if (r.roomId === roomId) opt.selected = true;
      el.roomSelect.appendChild(opt);
    });
  }

  el.roomSelect.addEventListener('focus', function () { loadRooms(); });
  el.roomSelect.addEventListener('change', function () {
    if (el.roomSelect.value && el.roomSelect.value !== roomId) location.href = roomUrl(el.roomSelect.value);
  });
  el.newRoom.addEventListener('click', function () {
    el.newRoomForm.hidden = false;
    el.newRoom.hidden = true;
    el.newRoomName.focus();
  });
  el.newRoomCancel.addEventListener('click', function () {
    el.newRoomForm.hidden = true;
    el.newRoom.hidden = false;
  });
  el.newRoomForm.addEventListener('submit', async function (e) {
    e.preventDefault();
    var name = el.newRoomName.value.trim();
    if (!name) return;
    try {
      var room = await api('/rooms', { method: 'POST', body: { name: name } });
      location.href = roomUrl(room.roomId);
    } catch (err) {
      toast('Could not create the room: ' + err.message, 'error');
    }
  });

  // ---- start -----------------------------------------------------------------------
  async function start() {
    document.title = (roomId === 'lobby' ? 'lobby' : roomId) + ' · rtchat';
    setStatus('connecting', 'connecting…');
    updateHistoryState();
    for (var delay = 1000; ; delay = Math.min(delay * 2, 15000)) {
      try { await ensureToken(); break; } catch (e) {
        setStatus('offline', 'offline');
        await new Promise(function (r) { setTimeout(r, delay); });
      }
    }
    try {
      await loadInitialHistory();
    } catch (e) {
      toast('Could not load messages: ' + e.message, 'error');
    }
    connect();
    loadRooms();
  }

  // A tiny handle for debugging in the console and for the browser test.
  window.rtchat = {
    get client() { return client; },
    get roomId() { return roomId; },
    get unacked() { return unacked.size; },
    get epoch() { return knownEpoch; },
    get me() { return { randId: me.randId, sub: me.sub }; },
    get transport() {
      return {
        kind: transport.kind, rtt: transport.rtt, lastClose: transport.lastClose, note: transport.note, setting: transportSetting,
        // WebTransport: the server's stream mode, and how many unidirectional streams it opened.
        streams: transport.streams, uniStreams: transport.socket ? transport.socket.uniStreams : null
      };
    },
    /** Leaves: DISCONNECT (with its receipt) and the transport's close; resolves when closed. */
    disconnect: function () { return client ? client.deactivate() : Promise.resolve(); }
  };

  start();
})();
