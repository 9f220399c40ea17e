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
 * The server may write each subscription's MESSAGEs on a unidirectional stream of its own
 * (its `--wt-streams per-subscription`; GET /webtransport says `streams`). WtSocket reads
 * `incomingUnidirectionalStreams` too, in either mode, and cuts every stream into whole
 * frames (`FrameSplitter`) before handing them to stompjs, so one stream's bytes never land
 * in the middle of another's frame.
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

  /** Largest frame a FrameSplitter holds while waiting for its end (16 MiB). */
  var MAX_SPLIT_FRAME = 16 * 1024 * 1024;

  /**
   * Cuts one stream's bytes into whole STOMP frames and heart-beat EOLs. A frame ends at the
   * NUL after its headers' blank line or, with a `content-length` header (the first counts),
   * at the NUL after that many body bytes. `push(chunk)` returns the whole frames now
   * complete as one Uint8Array (null when none is) and keeps the rest; it throws on a broken
   * stream.
   */
  function FrameSplitter() {
    this._buffer = new Uint8Array(0);
  }

  FrameSplitter.prototype.push = function (chunk) {
    var buffer;
    if (this._buffer.length === 0) {
      buffer = chunk;
    } else {
      buffer = new Uint8Array(this._buffer.length + chunk.length);
      buffer.set(this._buffer, 0);
      buffer.set(chunk, this._buffer.length);
    }
    var end = 0;
    for (;;) {
      var used = wholeItem(buffer, end);
      if (used === 0) break;
      end += used;
    }
    if (buffer.length - end > MAX_SPLIT_FRAME) throw new Error('a STOMP frame longer than 16 MiB');
    // A copy of what is kept, so the chunk handed out is not shared with the next one.
    this._buffer = buffer.slice(end);
    return end === 0 ? null : buffer.subarray(0, end);
  };

  /** The length of the whole frame or EOL at `start` of `buf`, or 0 if it is not whole. */
  function wholeItem(buf, start) {
    var n = buf.length;
    if (start >= n) return 0;
    if (buf[start] === 10) return 1;
    if (buf[start] === 13) {
      if (start + 1 >= n) return 0;
      if (buf[start + 1] === 10) return 2;
    }
    // The headers end at the first empty line (an EOL is \n or \r\n).
    var headersEnd = -1, bodyStart = -1;
    for (var i = start; i < n; i++) {
      if (buf[i] !== 10) continue;
      if (i + 1 >= n) return 0;
      if (buf[i + 1] === 10) { headersEnd = i; bodyStart = i + 2; break; }
      if (buf[i + 1] === 13) {
        if (i + 2 >= n) return 0;
        if (buf[i + 2] === 10) { headersEnd = i; bodyStart = i + 3; break; }
      }
    }
    if (bodyStart < 0) return 0;
    var length = contentLength(buf, start, headersEnd);
    if (length !== null) {
      var nul = bodyStart + length;
      if (nul >= n) return 0;
      if (buf[nul] !== 0) throw new Error('a STOMP frame whose body does not end where its content-length says');
      return nul + 1 - start;
    }
    for (var j = bodyStart; j < n; j++) {
      if (buf[j] === 0) return j + 1 - start;
    }
    return 0;
  }

  var CONTENT_LENGTH = 'content-length:';

  /** The first `content-length` among the header lines in buf[start, end), or null. */
  function contentLength(buf, start, end) {
    var line = start;
    var first = true;
    while (line < end) {
      var eol = line;
      while (eol < end && buf[eol] !== 10) eol++;
      if (!first && eol - line >= CONTENT_LENGTH.length) {
        var match = true;
        for (var k = 0; k < CONTENT_LENGTH.length; k++) {
          if (buf[line + k] !== CONTENT_LENGTH.charCodeAt(k)) { match = false; break; }
        }
        if (match) {
          var value = 0, digits = 0;
          for (var p = line + CONTENT_LENGTH.length; p < eol; p++) {
            var c = buf[p];
            if (c >= 48 && c <= 57) { value = value * 10 + (c - 48); digits++; }
            else if (c === 13 || c === 32) continue;
            else throw new Error('a STOMP frame with a broken content-length');
          }
          if (digits === 0) throw new Error('a STOMP frame with a broken content-length');
          return value;
        }
      }
      first = false;
      line = eol + 1;
    }
    return null;
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
    // Unidirectional streams the server opened (per-subscription mode: one per subscription
    // that had a MESSAGE).
    self.uniStreams = 0;
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
        self._pump(stream.readable.getReader(), new FrameSplitter(), true);
        self._acceptUni(self._wt.incomingUnidirectionalStreams.getReader());
      })
      .catch(function (e) { self._error(e); });
  }

  /**
   * Hands one stream's bytes to stompjs in whole frames. Every stream has its own splitter:
   * a frame cut across chunks is held back until whole, so frames of different streams never
   * interleave in stompjs's parser.
   */
  WtSocket.prototype._pump = function (reader, splitter, control) {
    var self = this;
    reader.read().then(function (result) {
      if (result.done) {
        // The server finished the STOMP stream (after DISCONNECT's RECEIPT or an ERROR, e.g.
        // "server shutting down"): nothing more comes, so this side ends the session, and
        // `closed` resolves with code 0 (see close below). A subscription's stream ending
        // ends only that subscription.
        if (control) self.close();
        return;
      }
      var whole;
      try {
        whole = splitter.push(result.value);
      } catch (e) {
        // Not STOMP: nothing more of this stream can be trusted.
        reader.cancel().catch(function () { /* gone */ });
        self._error(e);
        return;
      }
      if (whole && self.onmessage) {
        self.onmessage({ data: whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength) });
      }
      self._pump(reader, splitter, control);
    }, function () { /* the stream or the session ended: `closed` says how */ });
  };

  /** Reads every unidirectional stream the server opens (per-subscription mode). */
  WtSocket.prototype._acceptUni = function (streams) {
    var self = this;
    streams.read().then(function (result) {
      if (result.done) return;
      self.uniStreams++;
      self._pump(result.value.getReader(), new FrameSplitter(), false);
      self._acceptUni(streams);
    }, function () { /* the session ended */ });
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
    return {
      kind: 'webtransport', url: offer.url, hashes: offer.certificateHashes || [], note: '',
      streams: offer.streams || 'single'
    };
  }

  window.RtchatTransport = { WtSocket: WtSocket, choose: choose, supported: supported, FrameSplitter: FrameSplitter };
})();
