// The Spring frontend's way of talking to its backend: GET /init with the stored token (or
// "null"), the JWT decoded in the browser, SockJS at /connect with Stomp.over, the fixed room,
// /sub/channel/entry for the count, /pub/chat with a `token` header, and history through
// /message and /message/lastMessageId. What the test checks is recorded on `window.spring`.
/* global $, SockJS, Stomp */
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var BASE = params.get('server') || 'http://localhost:8080';
  var TRANSPORTS = params.get('transports');
  var ROOM_ID = '723a2a33-577b-4380-8116-a1aa8e5868d3';
  var PAGE = 10;

  var state = window.spring = {
    me: null,
    transport: null,
    live: [], // ids in the order the room subscription delivered them
    shownIds: {},
    duplicates: [],
    errors: [], // bodies from /user/queue/errors
    lost: [], // stompjs error callbacks
    serverBeats: 0,
    clientBeats: 0,
    oldestId: null,
    exhausted: false,
    loadingOlder: false,
    stomp: null,
  };

  function headers() {
    return {
      Authorization: 'Bearer ' + localStorage.getItem('token'),
      'ngrok-skip-browser-warning': '69420',
    };
  }

  function decodeJwt(token) {
    var base64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    var json = decodeURIComponent(atob(base64).split('').map(function (c) {
      return '%' + ('00' + c.charCodeAt(0).toString(16)).slice(-2);
    }).join(''));
    return JSON.parse(json);
  }

  function item(msg) {
    var mine = state.me && msg.nameTag === state.me.tag;
    var li = $('<li>').attr('data-id', msg.id).attr('data-mine', String(mine)).toggleClass('mine', mine);
    li.append($('<span class="name">').text(msg.randId), ' ', $('<span class="tag">').text(msg.nameTag), ' ');
    li.append($('<span class="text">').text(msg.message));
    return li;
  }

  function scrolledToBottom() {
    var s = $('#scroller')[0];
    s.scrollTop = s.scrollHeight;
  }

  function append(msg) {
    if (state.shownIds[msg.id]) { state.duplicates.push(msg.id); return; }
    state.shownIds[msg.id] = true;
    if (state.oldestId === null || msg.id < state.oldestId) state.oldestId = msg.id;
    $('#messages').append(item(msg));
    scrolledToBottom();
  }

  function prependOlder(list) {
    // The list comes newest first.
    var scroller = $('#scroller')[0];
    var before = scroller.scrollHeight;
    list.forEach(function (msg) {
      if (state.shownIds[msg.id]) { state.duplicates.push(msg.id); return; }
      state.shownIds[msg.id] = true;
      if (state.oldestId === null || msg.id < state.oldestId) state.oldestId = msg.id;
      $('#messages').prepend(item(msg));
    });
    scroller.scrollTop += scroller.scrollHeight - before;
  }

  function loadRecent(done) {
    $.ajax({
      url: BASE + '/message?roomId=' + encodeURIComponent(ROOM_ID) + '&limit=' + PAGE,
      type: 'GET',
      headers: headers(),
      success: function (data) {
        var list = data.response || [];
        list.slice().reverse().forEach(append);
        if (list.length < PAGE) state.exhausted = true;
        done();
      },
      error: function (xhr) { fail('GET /message: ' + xhr.status); },
    });
  }

  function loadOlder() {
    if (state.loadingOlder || state.exhausted || state.oldestId === null) return;
    state.loadingOlder = true;
    $('#history-state').attr('data-state', 'loading');
    $.ajax({
      url: BASE + '/message/lastMessageId?roomId=' + encodeURIComponent(ROOM_ID) + '&limit=' + PAGE +
        '&lastMessageId=' + state.oldestId,
      type: 'GET',
      headers: headers(),
      success: function (data) {
        var list = data.response || [];
        prependOlder(list);
        if (list.length < PAGE) state.exhausted = true;
        state.loadingOlder = false;
        $('#history-state').attr('data-state', state.exhausted ? 'exhausted' : 'idle');
      },
      error: function (xhr) { state.loadingOlder = false; fail('GET /message/lastMessageId: ' + xhr.status); },
    });
  }

  function fail(text) {
    state.lost.push(text);
    $('#error').text(text);
  }

  function connect() {
    var token = localStorage.getItem('token');
    var options = TRANSPORTS ? { transports: TRANSPORTS.split(',') } : {};
    var socket = new SockJS(BASE + '/connect', null, options);
    // Counted beside stompjs: a STOMP heart-beat is a lone newline either way.
    socket.addEventListener('message', function (e) { if (e.data === '\n') state.serverBeats++; });
    var send = socket.send.bind(socket);
    socket.send = function (data) { if (data === '\n') state.clientBeats++; return send(data); };
    var stomp = state.stomp = Stomp.over(socket);
    stomp.heartbeat.outgoing = 10000;
    stomp.heartbeat.incoming = 10000;
    stomp.debug = null;
    stomp.connect({
      Authorization: 'Bearer ' + token,
      'X-Client-IP': state.me.host,
      'ngrok-skip-browser-warning': '69420',
    }, function () {
      state.transport = socket.transport;
      stomp.subscribe('/user/queue/errors', function (frame) {
        var body = JSON.parse(frame.body);
        state.errors.push(body);
        $('#error').text(body.message);
      });
      stomp.subscribe('/sub/channel/' + ROOM_ID, function (frame) {
        var msg = JSON.parse(frame.body);
        state.live.push(msg.id);
        append(msg);
      });
      stomp.subscribe('/sub/channel/entry', function (frame) {
        $('#count').text(frame.body);
      });
      $('body').attr('data-connection', 'connected');
    }, function (error) {
      $('body').attr('data-connection', 'lost');
      fail(typeof error === 'string' ? error : (error.headers && error.headers.message) || 'error');
    });
  }

  function sendMessage(text) {
    state.stomp.send('/pub/chat', { token: localStorage.getItem('token') },
      JSON.stringify({ roomId: ROOM_ID, message: text }));
  }
  state.send = sendMessage;

  $(function () {
    $('#composer-form').on('submit', function (e) {
      e.preventDefault();
      var text = $('#composer').val().trim();
      if (!text) return;
      sendMessage(text);
      $('#composer').val('');
    });
    $('#scroller').on('scroll', function () { if (this.scrollTop === 0) loadOlder(); });

    $.ajax({
      url: BASE + '/init',
      type: 'GET',
      headers: headers(),
      success: function (data) {
        if (data.response) localStorage.setItem('token', data.response);
        var claims = decodeJwt(localStorage.getItem('token'));
        state.me = { name: claims.randId, tag: claims.sub, host: claims.aud[0] };
        $('#me-name').text(state.me.name);
        $('#me-tag').text(state.me.tag);
        $('#me-host').text(state.me.host);
        loadRecent(connect);
      },
      error: function (xhr) { fail('GET /init: ' + xhr.status); },
    });
  });
}());
