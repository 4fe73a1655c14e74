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
  let locked = false;

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

  function button(text, onClick) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = text;
    b.addEventListener('click', onClick);
    return b;
  }

  function render(live) {
    locked = live.locked;
    state.textContent = !live.open ? T.closed : (live.locked ? T.locked : T.open);
    lockButton.textContent = live.locked ? T.unlock : T.lock;
    lockButton.disabled = !live.open;
    endButton.disabled = !live.open;
    const rows = live.members.map((member) => {
      const row = document.createElement('tr');
      row.dataset.member = member.id;
      const name = document.createElement('th');
      name.scope = 'row';
      name.textContent = label(member);
      const talking = document.createElement('td');
      talking.textContent = member.talking ? T.talking : '';
      talking.className = member.talking ? 'talking' : '';
      const muted = document.createElement('td');
      muted.textContent = member.muted ? T.muted : '';
      const hand = document.createElement('td');
      hand.textContent = member.hand_raised ? T.hand_raised : '';
      const actions = document.createElement('td');
      const id = encodeURIComponent(member.id);
      actions.append(
        button(member.muted ? T.unmute : T.mute, async () => {
          if (await send('PUT', `/api/rooms/${room}/members/${id}/muted`, { muted: !member.muted })) {
            say((member.muted ? T.unmuted_who : T.muted_who).replace('{who}', label(member)));
            refresh();
          }
        }),
        button(T.remove, async () => {
          if (await send('DELETE', `/api/rooms/${room}/members/${id}`)) {
            say(T.removed_who.replace('{who}', label(member)));
            refresh();
          }
        }),
      );
      row.append(name, talking, muted, hand, actions);
      return row;
    });
    body.replaceChildren(...rows);
    if (rows.length === 0) {
      const row = document.createElement('tr');
      const cell = document.createElement('td');
      cell.colSpan = 5;
      cell.textContent = T.empty;
      row.append(cell);
      body.replaceChildren(row);
    }
  }

  let timer = null;
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
    timer = setTimeout(refresh, 500);
  }

  lockButton.addEventListener('click', async () => {
    if (await send('PUT', `/api/rooms/${room}/locked`, { locked: !locked })) refresh();
  });
  endButton.addEventListener('click', async () => {
    if (await send('POST', `/api/rooms/${room}/end`)) {
      say(T.ended);
      refresh();
    }
  });
  refresh();
})();
