// The join page: joins a conference room's audio with one RTCPeerConnection and shows who
// is in the room. No build step and no libraries; the server renders the page and puts the
// words in the `texts` JSON block, in the browser's language. The API is described in the
// README ("Join page").
'use strict';

(() => {
  const main = document.getElementById('main');
  const form = document.getElementById('join-form');
  if (!main || !form) return; // an unknown room: the page only says so

  const T = JSON.parse(document.getElementById('texts').textContent);
  // STUN/TURN relays the server hands out (TURN credentials may be short-lived, made when
  // the page was served).
  const iceServers = () => {
    const block = document.getElementById('ice-servers');
    try {
      return block ? JSON.parse(block.textContent) : [];
    } catch (_) {
      return [];
    }
  };
  const room = main.dataset.room;
  const needsPin = main.dataset.pin === 'true';
  const el = (id) => document.getElementById(id);
  const nameInput = el('name');
  const pinInput = el('pin');
  const joinButton = el('join');
  const inRoom = el('in-room');
  const leftSection = el('left');
  const muteButton = el('mute');
  const leaveButton = el('leave');
  const rejoinButton = el('rejoin');
  const list = el('participants');
  const talkingNow = el('talking');
  const statusLine = el('status');
  const errorLine = el('error');
  const remote = el('remote');

  // How often the participant list is fetched, and how reconnecting backs off.
  const POLL_MS = 500;
  const BACKOFF_S = [1, 2, 4, 8, 15];
  const MAX_RECONNECTS = 20;
  // A connection ICE calls disconnected for this long is treated as lost.
  const DISCONNECTED_GRACE_MS = 4000;
  const GATHERING_TIMEOUT_MS = 5000;
  // Polls that fail on the network in a row before the connection counts as lost.
  const FAILED_POLLS_LOST = 4;

  const fill = (text, values) =>
    text.replace(/\{(\w+)\}/g, (_, key) => (key in values ? String(values[key]) : ''));

  const inSeconds = (n) => (n === 1 ? T.one_second : fill(T.seconds, { n }));

  let name = '';
  let pin = '';
  let stream = null;     // the microphone, kept across reconnects
  let pc = null;
  let session = null;    // the session URL
  let muted = false;
  let muteChanges = 0;   // poll answers older than the last mute change do not set `muted`,
  let mutesInFlight = 0; // nor do those that come while one is on its way
  let pollTimer = null;
  let failedPolls = 0;
  let reconnects = 0;
  let reconnectTimer = null;
  let disconnectedTimer = null;
  let lastRoster = '';
  let lastTalkers = '';
  let generation = 0;    // bumps on every (re)join, so late callbacks of an old one do nothing

  // An error the user must act on: joining stops.
  class Refusal extends Error {}

  const say = (text) => { statusLine.textContent = text; };
  const complain = (text) => { errorLine.textContent = text; };

  function setBusy(busy) {
    joinButton.disabled = busy;
    if (busy) say(T.joining);
  }

  function showForm() {
    form.hidden = false;
    inRoom.hidden = true;
    leftSection.hidden = true;
    setBusy(false);
  }

  function showRoom() {
    form.hidden = true;
    leftSection.hidden = true;
    inRoom.hidden = false;
  }

  function showMuted() {
    muteButton.textContent = muted ? T.unmute : T.mute;
    muteButton.setAttribute('aria-pressed', String(muted));
    muteButton.classList.toggle('muted', muted);
    const track = stream && stream.getAudioTracks()[0];
    if (track) track.enabled = !muted;
  }

  async function microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.RTCPeerConnection) {
      throw new Refusal(T.error_unsupported);
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      if (err && (err.name === 'NotFoundError' || err.name === 'OverconstrainedError')) {
        throw new Refusal(T.error_no_mic_device);
      }
      throw new Refusal(T.error_no_mic);
    }
  }

  // No trickle ICE: the offer goes out with every candidate in it.
  // Asks the server for Opus DTX (RFC 7587 usedtx=1): while nobody talks it then sends a
  // packet every 400 ms instead of every 20 ms. Chrome's offer does not ask by itself.
  function askingForDtx(offer) {
    const opus = /^a=rtpmap:(\d+) opus\/48000/im.exec(offer.sdp);
    if (!opus) return offer;
    const fmtp = new RegExp(`^(a=fmtp:${opus[1]} [^\r\n]*)$`, 'm');
    const sdp = offer.sdp.replace(fmtp, (line) => (/usedtx=/.test(line) ? line : `${line};usedtx=1`));
    return { type: offer.type, sdp };
  }

  function gatheringComplete(connection) {
    if (connection.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (connection.iceGatheringState === 'complete') {
          connection.removeEventListener('icegatheringstatechange', done);
          resolve();
        }
      };
      connection.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, GATHERING_TIMEOUT_MS);
    });
  }

  // What a refused join means to the user; null when trying again later may help.
  function refusalText(status, body) {
    switch (body.error) {
      case 'bad_name': return T.error_name;
      case 'wrong_pin':
        if (body.tries_left > 1) return fill(T.error_wrong_pin, { n: body.tries_left });
        return body.tries_left === 1 ? T.error_wrong_pin_last : T.error_wrong_pin_wait;
      case 'too_many_pin_tries':
        return fill(T.error_too_many_pins, { s: inSeconds(body.retry_after || 60) });
      case 'unknown_room': return fill(T.error_unknown_room, { room });
      case 'room_full': return T.error_full;
      case 'room_locked': return T.error_locked;
      case 'room_closing': return T.error_closing;
      default:
        if (status >= 500) return null;
        return T.error_generic;
    }
  }

  function closeConnection() {
    if (disconnectedTimer) { clearTimeout(disconnectedTimer); disconnectedTimer = null; }
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.ontrack = null;
      pc.close();
      pc = null;
    }
    remote.srcObject = null;
  }

  function releaseMicrophone() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
  }

  // Ends the session on the server, if there is one; never waits for the answer.
  function deleteSession() {
    if (!session) return;
    const url = session;
    session = null;
    fetch(url, { method: 'DELETE', keepalive: true }).catch(() => {});
  }

  async function join(again) {
    const mine = ++generation;
    complain('');
    setBusy(true);
    let connection = null;
    try {
      if (!stream) stream = await microphone();
      showMuted();
      connection = new RTCPeerConnection({ iceServers: iceServers() });
      pc = connection;
      const [track] = stream.getAudioTracks();
      connection.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
      connection.ontrack = (event) => {
        remote.srcObject = new MediaStream([event.track]);
        remote.play().catch(() => {});
      };
      connection.onconnectionstatechange = () => connectionChanged(connection, mine);
      await connection.setLocalDescription(askingForDtx(await connection.createOffer()));
      await gatheringComplete(connection);
      const response = await fetch(`/join/${encodeURIComponent(room)}/sessions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name, pin, sdp: connection.localDescription.sdp }),
      });
      const body = await response.json().catch(() => ({}));
      if (mine !== generation) return;
      if (response.status !== 201) {
        const text = refusalText(response.status, body);
        if (text) throw new Refusal(text);
        throw new Error(body.reason || `HTTP ${response.status}`);
      }
      session = body.session;
      await connection.setRemoteDescription({ type: 'answer', sdp: body.sdp });
      if (muted) putMuted();
      showRoom();
      say(again ? T.reconnected : T.joined);
      reconnects = 0;
      failedPolls = 0;
      poll(mine);
    } catch (err) {
      if (mine !== generation) return;
      closeConnection();
      if (err instanceof Refusal) {
        deleteSession();
        if (!again || inRoom.hidden) {
          releaseMicrophone();
          showForm();
          say('');
          complain(err.message);
          const field = err.message === T.error_name ? nameInput : pinInput;
          if (field && (err.message === T.error_name || needsPin)) field.focus();
        } else {
          ended(err.message);
        }
        return;
      }
      if (again) {
        lost();
      } else {
        releaseMicrophone();
        showForm();
        say('');
        complain(T.error_busy);
      }
    }
  }

  function connectionChanged(connection, mine) {
    if (mine !== generation) return;
    const state = connection.connectionState;
    if (state === 'connected') {
      if (disconnectedTimer) { clearTimeout(disconnectedTimer); disconnectedTimer = null; }
    } else if (state === 'failed' || state === 'closed') {
      lost();
    } else if (state === 'disconnected' && !disconnectedTimer) {
      disconnectedTimer = setTimeout(() => {
        disconnectedTimer = null;
        if (mine === generation && connection.connectionState !== 'connected') lost();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  // Why the server ended session `url`, if it says so (a conference that ended is not
  // joined again); null when it cannot tell (it restarted, or it is out of reach).
  async function endReason(url) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 2000);
    try {
      const response = await fetch(url, { cache: 'no-store', signal: abort.signal });
      const body = await response.json().catch(() => ({}));
      return response.status === 410 ? body.ended : null;
    } catch (err) {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  // The connection is gone: join again after a growing pause, unless the server ended the
  // session for good.
  async function lost() {
    const mine = ++generation;
    closeConnection();
    if (session) {
      const reason = await endReason(session);
      if (mine !== generation) return;
      if (reason === 'conference_ended') return ended(T.error_ended);
      if (reason === 'room_closed') return ended(T.error_room_closed);
      if (reason === 'removed') return ended(T.error_removed);
    }
    deleteSession();
    if (reconnectTimer) return;
    if (reconnects >= MAX_RECONNECTS) {
      ended(T.reconnect_failed);
      return;
    }
    const seconds = BACKOFF_S[Math.min(reconnects, BACKOFF_S.length - 1)];
    reconnects++;
    say(fill(T.reconnecting, { s: inSeconds(seconds) }));
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      join(true);
    }, seconds * 1000);
  }

  // The session is over for good (the conference ended, or reconnecting gave up).
  function ended(text) {
    generation++;
    closeConnection();
    deleteSession();
    releaseMicrophone();
    inRoom.hidden = true;
    form.hidden = true;
    leftSection.hidden = false;
    say('');
    complain(text);
    rejoinButton.focus();
  }

  async function poll(mine) {
    if (mine !== generation || !session) return;
    const changesBefore = muteChanges;
    try {
      const response = await fetch(session, { cache: 'no-store' });
      if (mine !== generation) return;
      const body = await response.json().catch(() => ({}));
      if (response.status === 410) {
        if (body.ended === 'conference_ended') return ended(T.error_ended);
        if (body.ended === 'room_closed') return ended(T.error_room_closed);
        if (body.ended === 'removed') return ended(T.error_removed);
        if (body.ended === 'left') return;
        return lost();
      }
      if (response.status === 404) return lost();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      failedPolls = 0;
      showParticipants(body.participants || [], changesBefore === muteChanges && mutesInFlight === 0);
    } catch (err) {
      if (mine !== generation) return;
      failedPolls++;
      if (failedPolls >= FAILED_POLLS_LOST) return lost();
    }
    pollTimer = setTimeout(() => poll(mine), POLL_MS);
  }

  function label(p) {
    if (p.kind === 'browser') return p.you ? `${p.name} (${T.you})` : p.name;
    if (p.kind === 'phone') return p.name ? `${T.phone} ${p.name}` : T.phone;
    return T.meeting;
  }

  function showParticipants(participants, mayTakeMuted) {
    const me = participants.find((p) => p.you);
    if (me && mayTakeMuted && me.muted !== muted) {
      // A moderator (or the room waiting for one) changed it.
      muted = me.muted;
      showMuted();
      say(muted ? T.muted_by_room : T.unmuted_status);
    }
    const roster = JSON.stringify(participants);
    if (roster !== lastRoster) {
      lastRoster = roster;
      list.replaceChildren(...participants.map((p) => {
        const item = document.createElement('li');
        item.dataset.kind = p.kind;
        item.dataset.you = String(p.you);
        item.dataset.talking = String(p.talking);
        item.dataset.muted = String(p.muted);
        const who = document.createElement('span');
        who.className = 'who';
        who.textContent = label(p);
        item.append(who);
        for (const [flag, text] of [[p.talking, T.talking], [p.muted, T.muted]]) {
          if (!flag) continue;
          const badge = document.createElement('span');
          badge.className = `badge ${text === T.talking ? 'talking' : 'muted'}`;
          badge.textContent = text;
          item.append(' ', badge);
        }
        return item;
      }));
      if (participants.length <= 1) {
        const item = document.createElement('li');
        item.className = 'nobody';
        item.textContent = T.nobody;
        list.append(item);
      }
    }
    // Said once per change, not per poll, so a screen reader is not flooded.
    const talkers = participants.filter((p) => p.talking && !p.you).map(label).join(', ');
    if (talkers !== lastTalkers) {
      lastTalkers = talkers;
      talkingNow.textContent = talkers ? fill(T.now_talking, { name: talkers }) : T.nobody_talking;
    }
  }

  function putMuted() {
    if (!session) return;
    muteChanges++;
    mutesInFlight++;
    fetch(`${session}/muted`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ muted }),
    }).catch(() => {}).finally(() => { mutesInFlight--; muteChanges++; });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    name = nameInput.value.trim();
    pin = pinInput ? pinInput.value.trim() : '';
    if (!name || name.length > 40) {
      complain(T.error_name);
      nameInput.setAttribute('aria-invalid', 'true');
      nameInput.focus();
      return;
    }
    nameInput.removeAttribute('aria-invalid');
    if (needsPin && !pin) {
      complain(T.error_pin_missing);
      pinInput.setAttribute('aria-invalid', 'true');
      pinInput.focus();
      return;
    }
    if (pinInput) pinInput.removeAttribute('aria-invalid');
    reconnects = 0;
    join(false);
  });

  muteButton.addEventListener('click', () => {
    muted = !muted;
    showMuted();
    say(muted ? T.muted_status : T.unmuted_status);
    putMuted();
  });

  leaveButton.addEventListener('click', () => {
    generation++;
    if (reconnectTimer) { clearTimeout(reconnectTimer); reconnectTimer = null; }
    closeConnection();
    deleteSession();
    releaseMicrophone();
    inRoom.hidden = true;
    leftSection.hidden = false;
    complain('');
    say(T.left);
    rejoinButton.focus();
  });

  rejoinButton.addEventListener('click', () => {
    complain('');
    say('');
    showForm();
    nameInput.focus();
  });

  window.addEventListener('pagehide', () => {
    generation++;
    deleteSession();
  });
})();
