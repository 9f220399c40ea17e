/*
 * rtchat page: the transport under STOMP (global `RtchatTransport`).
 *
 * One STOMP client code path: @stomp/stompjs takes any WebSocket-like object from its
 * `webSocketFactory`, so WebTransport is given to it as `WtSocket`, a small WebSocket-shaped
 * wrapper around a WebTransport session's first bidirectional stream (the server's wire
 * contract, docs/protocol.md). stompjs keeps doing everything else the same way over both:
 * frames, heart-beats, receipts, reconnects. Writing STOMP frames by hand instead would mean a
 * second client for the same protocol.
 *
 * `choose(setting)` picks the transport: "websocket", "webtransport", or "auto"
 * (WebTransport when the browser has it, the page is a secure context and the server offers
 * it, else WebSocket). The certificate hashes come from GET /webtransport, fetched before
 * every connection (the server's self-signed certificate rotates).
 */
(function () {
  'use strict';

  var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

  function base64ToBytes(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  /** Whether this browser can open WebTransport sessions from this page. */
  function supported() {
    return typeof window.WebTransport === 'function' && window.isSecureContext === true;
  }

  /**
   * A WebSocket-shaped view of a WebTransport session's STOMP stream: readyState, send,
   * close, onopen/onmessage/onclose/onerror. `onClosed(info)` hears how the session ended:
   * {clean: true, closeCode, reason} when `closed` resolved, {clean: false, error} otherwise.
   */
  function WtSocket(url, hashes, onClosed) {
    var self = this;
    self.url = url;
    self.protocol = 'v12.stomp';
    self.binaryType = 'arraybuffer';
    self.readyState = CONNECTING;
    self.onopen = null;
    self.onmessage = null;
    self.onclose = null;
    self.onerror = null;
    self.opened = false;
    self._writer = null;
    self._finished = false;
    self._encoder = new TextEncoder();
    var options = {};
    if (hashes && hashes.length) {
      options.serverCertificateHashes = hashes.map(function (h) {
        return { algorithm: h.algorithm, value: base64ToBytes(h.value) };
      });
    }
    try {
      self._wt = new WebTransport(url, options);
    } catch (e) {
      setTimeout(function () { self._error(e); self._finish(false, { error: String(e) }, onClosed); }, 0);
      return;
    }
    self._wt.closed.then(
      function (info) {
        self._finish(true, { closeCode: info ? info.closeCode : 0, reason: info ? info.reason : '' }, onClosed);
      },
      function (error) { self._finish(false, { error: String(error && error.message || error) }, onClosed); }
    );
    self._wt.ready
      .then(function () { return self._wt.createBidirectionalStream(); })
      .then(function (stream) {
        if (self.readyState !== CONNECTING) return;
        self._writer = stream.writable.getWriter();
        self.readyState = OPEN;
        self.opened = true;
        if (self.onopen) self.onopen({ type: 'open' });
        self._pump(stream.readable.getReader());
      })
      .catch(function (e) { self._error(e); });
  }

  WtSocket.prototype._pump = function (reader) {
    var self = this;
    reader.read().then(function (result) {
      if (result.done) {
        // The server finished the STOMP stream (after DISCONNECT's RECEIPT or an ERROR, e.g.
        // "server shutting down"): nothing more comes, so this side ends the session, and
        // `closed` resolves with code 0 (see close below).
        self.close();
        return;
      }
      var chunk = result.value;
      // stompjs parses ArrayBuffers incrementally: frames may span chunks.
      var data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength);
      if (self.onmessage) self.onmessage({ data: data });
      self._pump(reader);
    }, function () { /* the session ended: `closed` says how */ });
  };

  WtSocket.prototype._error = function (e) {
    if (this.onerror) this.onerror({ type: 'error', error: e });
  };

  WtSocket.prototype._finish = function (clean, info, onClosed) {
    if (this._finished) return;
    this._finished = true;
    this.readyState = CLOSED;
    info.clean = clean;
    if (onClosed) onClosed(info);
    if (this.onclose) {
      this.onclose({ type: 'close', code: clean ? 1000 : 1006, reason: info.reason || info.error || '', wasClean: clean });
    }
  };

  WtSocket.prototype.send = function (data) {
    if (this.readyState !== OPEN || !this._writer) return;
    var bytes = typeof data === 'string' ? this._encoder.encode(data) : data;
    this._writer.write(bytes).catch(function () { /* `closed` reports the failure */ });
  };

  /**
   * Ends the session with CLOSE_WEBTRANSPORT_SESSION (code 0) from this side: stompjs closes
   * the socket once DISCONNECT's RECEIPT is in, and the pump does once the server finished
   * the stream, so nothing is left to read. The server waits a moment for this before it
   * sends its own CLOSE_WEBTRANSPORT_SESSION, which Chromium 156 reports as "Connection lost"
   * (see docs/protocol.md).
   */
  WtSocket.prototype.close = function () {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    if (this._wt) {
      try { this._wt.close({ closeCode: 0, reason: 'client closing' }); } catch (e) { /* gone */ }
    }
  };

  /**
   * The transport for the next connection: {kind: "websocket"|"webtransport", url, hashes,
   * note}. `note` says why a WebTransport choice fell back to WebSocket.
   */
  async function choose(setting, wsUrl) {
    var ws = { kind: 'websocket', url: wsUrl, hashes: [], note: '' };
    if (setting === 'websocket') return ws;
    if (!supported()) {
      ws.note = 'this browser cannot use WebTransport here';
      return ws;
    }
    var offer;
    try {
      var res = await fetch('/webtransport', { cache: 'no-store' });
      var env = await res.json();
      if (!env || !env.success) {
        ws.note = (env && env.error && env.error.message) || ('HTTP ' + res.status);
        return ws;
      }
      offer = env.response;
      if (!offer) {
        ws.note = 'the server does not offer WebTransport';
        return ws;
      }
    } catch (e) {
      ws.note = 'cannot read /webtransport: ' + e.message;
      return ws;
    }
    return { kind: 'webtransport', url: offer.url, hashes: offer.certificateHashes || [], note: '' };
  }

  window.RtchatTransport = { WtSocket: WtSocket, choose: choose, supported: supported };
})();
