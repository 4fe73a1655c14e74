// The console's live room view: polls the room's live state twice a second and offers the
// moderation buttons. No build step; the page works without it (the room list and forms
// are plain HTML), this only adds the live part. Texts come from the page's data block.
'use strict';

(function () {
  const view = document.getElementById('live');
  if (!view) return;
  const T = JSON.parse(document.getElementById('texts').textContent);
  const room = view.dataset.room;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const body = document.getElementById('members');
  const state = document.getElementById('room-state');
  const status = document.getElementById('status');
  const lockButton = document.getElementById('lock');
  const endButton = document.getElementById('end');
  const muteAllButton = document.getElementById('mute-all');
  const recordButton = document.getElementById('record');
  const recordingState = document.getElementById('recording-state');
  let locked = false;
  let recording = false;

  function say(text) {
    status.textContent = text;
  }

  async function send(method, path, payload) {
    const options = { method, headers: { 'X-CSRF-Token': csrf }, cache: 'no-store' };
    if (payload !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(payload);
    }
    const response = await fetch(path, options);
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      say(`${T.error}: ${answer.reason || response.status}`);
      return false;
    }
    return true;
  }

  function label(member) {
    const who = member.name || T['kind_' + member.kind] || member.kind;
    return member.moderator ? `${who} (${T.moderator})` : who;
  }

  // `action` names the button for scripts and tests; its accessible name (set in update())
  // carries the member, so a screen reader says "Mute: 0711…", not "Mute" in every row.
  function button(text, action, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.dataset.action = action;
    b.addEventListener('click', onClick);
    return b;
  }

  // Rows are kept per member and updated in place, never rebuilt: a keyboard user's focus
  // on a row's button survives the twice-a-second refresh.
  const rows = new Map();

  function memberRow(member) {
    const row = document.createElement('tr');
    row.dataset.member = member.id;
    const name = document.createElement('th');
    name.scope = 'row';
    const id = encodeURIComponent(member.id);
    const cells = [name];
    for (let i = 0; i < 3; i++) cells.push(document.createElement('td'));
    const actions = document.createElement('td');
    const mute = button('', 'mute', async () => {
      const muted = row.dataset.muted === 'true';
      if (await send('PUT', `/api/rooms/${room}/members/${id}/muted`, { muted: !muted })) {
        say((muted ? T.unmuted_who : T.muted_who).replace('{who}', name.textContent));
        refresh();
      }
    });
    const remove = button(T.remove, 'remove', async () => {
      if (await send('DELETE', `/api/rooms/${room}/members/${id}`)) {
        say(T.removed_who.replace('{who}', name.textContent));
        refresh();
      }
    });
    actions.append(mute, ' ', remove);
    row.append(...cells, actions);
    return row;
  }

  function update(row, member) {
    const [name, talking, muted, hand] = row.children;
    const who = label(member);
    name.textContent = who;
    row.dataset.talking = member.talking;
    row.dataset.muted = member.muted;
    talking.textContent = member.talking ? T.talking : '';
    talking.className = member.talking ? 'talking' : '';
    muted.textContent = member.muted ? T.muted : '';
    hand.textContent = member.hand_raised ? T.hand_raised : '';
    const [mute, remove] = row.querySelectorAll('button');
    mute.textContent = member.muted ? T.unmute : T.mute;
    mute.dataset.action = member.muted ? 'unmute' : 'mute';
    mute.setAttribute('aria-label', `${mute.textContent}: ${who}`);
    remove.setAttribute('aria-label', `${T.remove}: ${who}`);
  }

  const emptyRow = document.createElement('tr');
  const emptyCell = document.createElement('td');
  emptyCell.colSpan = 5;
  emptyRow.append(emptyCell);

  function render(live) {
    locked = live.locked;
    state.textContent = !live.open ? T.closed : (live.locked ? T.locked : T.open);
    lockButton.textContent = live.locked ? T.unlock : T.lock;
    lockButton.disabled = !live.open;
    endButton.disabled = !live.open;
    muteAllButton.disabled = !live.open;
    recording = live.recording;
    recordButton.textContent = live.recording ? T.stop_recording : T.start_recording;
    recordButton.disabled = !live.open;
    recordingState.hidden = !live.recording;
    const present = new Set(live.members.map((member) => member.id));
    for (const [id, row] of rows) {
      if (!present.has(id)) {
        row.remove();
        rows.delete(id);
      }
    }
    for (const member of live.members) {
      let row = rows.get(member.id);
      if (!row) {
        row = memberRow(member);
        rows.set(member.id, row);
        body.append(row);
      }
      update(row, member);
    }
    if (rows.size === 0) {
      emptyCell.textContent = T.empty;
      body.append(emptyRow);
    } else {
      emptyRow.remove();
    }
  }

  // The server pushes the room's state whenever it changes (server-sent events). While that
  // stream is down (a proxy that buffers it, the server restarting) the page asks twice a
  // second instead, and tries the stream again every 30 s.
  let timer = null;
  let stream = null;
  async function refresh() {
    clearTimeout(timer);
    try {
      const response = await fetch(`/api/rooms/${room}/live`, { cache: 'no-store' });
      if (response.status === 401) {
        window.location.assign('/console/sign-in');
        return;
      }
      if (response.ok) render(await response.json());
    } catch (err) {
      say(`${T.error}: ${err.message}`);
    }
    if (!stream) timer = setTimeout(refresh, 500);
  }

  function listen() {
    if (!window.EventSource) return;
    const source = new EventSource(`/api/rooms/${room}/events`);
    source.addEventListener('open', () => {
      stream = source;
      clearTimeout(timer);
    });
    source.addEventListener('message', (event) => render(JSON.parse(event.data)));
    source.addEventListener('error', () => {
      // The browser reconnects by itself while it can (e.g. after the stream's time is up);
      // a closed one (refused, signed out) is replaced by asking.
      if (source.readyState === EventSource.CLOSED) {
        stream = null;
        refresh();
        setTimeout(listen, 30000);
      }
    });
  }

  lockButton.addEventListener('click', async () => {
    if (await send('PUT', `/api/rooms/${room}/locked`, { locked: !locked })) refresh();
  });
  muteAllButton.addEventListener('click', async () => {
    const response = await fetch(`/api/rooms/${room}/mute-all`, {
      method: 'POST', headers: { 'X-CSRF-Token': csrf }, cache: 'no-store',
    });
    if (response.ok) {
      say(T.muted_all.replace('{n}', (await response.json()).muted));
      refresh();
    } else {
      const answer = await response.json().catch(() => ({}));
      say(`${T.error}: ${answer.reason || response.status}`);
    }
  });
  recordButton.addEventListener('click', async () => {
    const start = !recording;
    if (await send('PUT', `/api/rooms/${room}/recording`, { recording: start })) {
      say(start ? T.recording_started : T.recording_stopped);
      refresh();
    }
  });
  endButton.addEventListener('click', async () => {
    if (await send('POST', `/api/rooms/${room}/end`)) {
      say(T.ended);
      refresh();
    }
  });
  refresh();
  listen();
})();
