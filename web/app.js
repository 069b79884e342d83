// The buddy-list page of presenced: who is active, idle or offline, live.
//
// Plain JavaScript, no build step. It speaks Zulip's API, as a Zulip client
// would (shared/reference/zulip-presence.md §4 and §6):
//
//   1. GET /api/v1/users for names (the page is compiled into the server,
//      so the server always has it).
//   2. POST /api/v1/register for a snapshot and an event queue with
//      simplified (user-id keyed) presence events and presenced's
//      presence_transitions.
//   3. A ping loop: POST /api/v1/users/me/presence every
//      server_presence_ping_interval_seconds with "active" or "idle" (idle
//      after 5 minutes without input), merging the answer incrementally with
//      last_update_id (§6.2, §6.4).
//   4. A long-poll loop on GET /api/v1/events merging presence events,
//      including presenced's "transition" events, re-registering on
//      BAD_EVENT_QUEUE_ID and backing off on errors.
//   5. User status (Zulip's user_status, with presenced's
//      user_status_extensions: a scheduled end and do-not-disturb): the
//      snapshot and user_status events (only the fields an event carries
//      change), shown beside each name; a form sets and clears one's own
//      (POST /api/v1/users/me/status). Every user-supplied text goes into
//      the page as text (textContent), never as HTML.
//
// Status follows §6.3: ages are measured against the server_timestamp of the
// data, the threshold comes from /register, and the comparison is strict.
//
// The email and API key are kept in sessionStorage only (this tab).
'use strict';

(function main() {
  const STORAGE_KEY = 'presenced.session';
  const IDLE_AFTER_MS = 5 * 60 * 1000;
  const HISTORY_DAYS = 365; // as Zulip's web app (§5)
  const DEFAULT_PING_S = 60;
  const DEFAULT_THRESHOLD_S = 140; // what clients assume on old servers (§5)
  const DEFAULT_LONGPOLL_S = 90;
  const MAX_BACKOFF_MS = 30000;
  const MEMBERS_REFRESH_MIN_MS = 60000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    signInView: $('sign-in-view'),
    form: $('sign-in-form'),
    email: $('email'),
    apiKey: $('api-key'),
    signInError: $('sign-in-error'),
    signInButton: $('sign-in-button'),
    listView: $('list-view'),
    people: $('people'),
    summary: $('summary'),
    filter: $('filter'),
    notice: $('notice'),
    empty: $('empty'),
    sessionControls: $('session-controls'),
    connection: $('connection'),
    signOut: $('sign-out'),
    realmName: $('realm-name'),
    myStatus: $('my-status'),
    myStatusNow: $('my-status-now'),
    statusForm: $('status-form'),
    statusEmoji: $('status-emoji'),
    statusText: $('status-text'),
    statusEnd: $('status-end'),
    statusSave: $('status-save'),
    statusClear: $('status-clear'),
    statusError: $('status-error'),
    dndToggle: $('dnd-toggle'),
    dndEnd: $('dnd-end'),
  };

  // ---------------------------------------------------------------- state

  let session = null; // {email, apiKey}
  let generation = 0; // bumped on sign-out: stale loops stop
  let state = null;

  function freshState() {
    return {
      members: new Map(), // key -> {key, userId, email, name, dateJoined}
      raw: new Map(), // key -> {server_timestamp, active_timestamp, idle_timestamp}
      status: new Map(), // key -> 'active' | 'idle' | 'offline'
      myKey: null,
      queueId: null,
      lastEventId: -1,
      lastUpdateId: -1,
      pingIntervalS: DEFAULT_PING_S,
      thresholdS: DEFAULT_THRESHOLD_S,
      longpollS: DEFAULT_LONGPOLL_S,
      presenceDisabled: false,
      presenceEnabled: true,
      userStatus: new Map(), // key -> {status_text, emoji_*, away, scheduled_end_time, dnd, dnd_end_time}
      serverOffsetS: 0, // server clock - local clock, from server_timestamp
      membersFetchedAt: 0,
      pingTimer: null,
      clientActive: document.hasFocus(),
      lastInputAt: Date.now(),
      newUserInput: true,
    };
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, json, retryAfterS) {
      super((json && json.msg) || `HTTP ${status}`);
      this.status = status;
      this.code = json && json.code;
      this.json = json;
      this.retryAfterS = retryAfterS;
    }
  }

  function basicAuth(email, apiKey) {
    const bytes = new TextEncoder().encode(`${email}:${apiKey}`);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return `Basic ${btoa(bin)}`;
  }

  // One Zulip API call. Parameters go form-urlencoded in the body (POST,
  // PATCH) or the query string (GET, DELETE); JSON-typed values must already
  // be JSON text. Resolves to the JSON body of a success; rejects with
  // ApiError (an HTTP answer) or another Error (network, timeout).
  async function api(method, route, params, opts = {}) {
    const creds = opts.creds || session;
    const body = new URLSearchParams(params || {}).toString();
    let url = `/api/v1${route}`;
    const init = {
      method,
      headers: { Authorization: basicAuth(creds.email, creds.apiKey) },
      cache: 'no-store',
      credentials: 'omit',
    };
    if (method === 'GET' || method === 'DELETE') {
      if (body) url += `?${body}`;
    } else {
      init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
      init.body = body;
    }
    if (opts.keepalive) init.keepalive = true;
    let timer = null;
    if (opts.timeoutMs) {
      const ctl = new AbortController();
      init.signal = ctl.signal;
      timer = setTimeout(() => ctl.abort(), opts.timeoutMs);
    }
    try {
      const res = await fetch(url, init);
      let json = null;
      try {
        json = await res.json();
      } catch {
        json = null;
      }
      if (res.ok && json && json.result === 'success') return json;
      let retry = Number(res.headers.get('Retry-After'));
      if (!Number.isFinite(retry) && json) retry = Number(json['retry-after']);
      throw new ApiError(res.status, json, Number.isFinite(retry) ? retry : null);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  // ----------------------------------------------------- presence model

  function localNowS() {
    return Date.now() / 1000;
  }

  // The server's clock, estimated from the last server_timestamp seen.
  function serverNowS() {
    return localNowS() + state.serverOffsetS;
  }

  function noteServerTime(serverTs) {
    if (typeof serverTs === 'number' && Number.isFinite(serverTs)) {
      state.serverOffsetS = serverTs - localNowS();
    }
  }

  // §6.3 status_from_raw: strict comparisons against the data's own
  // server_timestamp. A future timestamp (negative age) counts as fresh.
  function statusFromRaw(raw, member) {
    const T = state.thresholdS;
    const age = (ts) => raw.server_timestamp - (ts || 0);
    const joined = member && member.dateJoined ? member.dateJoined : 0;
    if (age(raw.active_timestamp) < T) {
      return { status: 'active', lastActive: raw.active_timestamp };
    }
    if (age(raw.idle_timestamp) < T) {
      return {
        status: 'idle',
        lastActive: Math.max(raw.active_timestamp || 0, raw.idle_timestamp || 0),
      };
    }
    const last = Math.max(raw.active_timestamp || 0, joined);
    return { status: 'offline', lastActive: last || undefined };
  }

  function currentStatus(key) {
    if (key === state.myKey) {
      // §6.3: the current user is active unless invisible.
      const raw = state.raw.get(key);
      return {
        status: state.presenceEnabled ? 'active' : 'offline',
        lastActive: raw ? raw.active_timestamp : undefined,
      };
    }
    const raw = state.raw.get(key);
    if (!raw) {
      // §6.4 step 5: no data in the 365-day window. Someone who joined
      // within it has never been active at all.
      const m = state.members.get(key);
      const joined = m ? m.dateJoined : 0;
      const never = joined > 0 && serverNowS() - joined < HISTORY_DAYS * 86400;
      return { status: 'offline', lastActive: undefined, never };
    }
    return statusFromRaw(raw, state.members.get(key));
  }

  // Per-client extension: the device of the client that made the status
  // (the freshest active client of an active user, the freshest report of
  // an idle one). '' without per-client data.
  const MOBILE_CLIENTS = new Set(['ZulipMobile', 'ZulipFlutter', 'ZulipAndroid', 'ZulipiOS']);
  const DESKTOP_CLIENTS = new Set(['website', 'ZulipTerminal', 'ZulipElectron', 'ZulipDesktop']);
  function deviceOf(key, status) {
    const raw = state.raw.get(key);
    if (!raw || !raw.clients || (status !== 'active' && status !== 'idle')) return '';
    let best = -Infinity;
    let device = '';
    for (const [name, t] of Object.entries(raw.clients)) {
      const ts = status === 'active' ? t.active_timestamp : t.idle_timestamp;
      if (typeof ts !== 'number' || ts <= best) continue;
      best = ts;
      device = MOBILE_CLIENTS.has(name) ? 'mobile' : DESKTOP_CLIENTS.has(name) ? 'desktop' : '';
    }
    return device;
  }

  function recompute(key) {
    state.status.set(key, currentStatus(key).status);
  }

  // §6.4 set_info: a register snapshot or a ping answer.
  function setInfo(presences, serverTs, lastUpdateId) {
    noteServerTime(serverTs);
    if (typeof lastUpdateId === 'number') state.lastUpdateId = lastUpdateId;
    const wasOnline = new Set();
    for (const [key, s] of state.status) {
      if (s === 'active' || s === 'idle') wasOnline.add(key);
    }
    let unknown = false;
    for (const [key, entry] of Object.entries(presences || {})) {
      // Replace: each entry is the user's complete current pair.
      state.raw.set(key, {
        server_timestamp: serverTs,
        active_timestamp: entry.active_timestamp,
        idle_timestamp: entry.idle_timestamp,
        clients: entry.clients,
      });
      // Unknown ids are kept: new users whose names we have not fetched.
      if (!state.members.has(key)) unknown = true;
      recompute(key);
      wasOnline.delete(key);
    }
    // Users online before but absent now age against the new server time.
    for (const key of wasOnline) {
      const raw = state.raw.get(key);
      if (raw) raw.server_timestamp = serverTs;
      recompute(key);
    }
    if (state.myKey) recompute(state.myKey);
    if (unknown) refreshMembersSoon();
    scheduleRender();
  }

  // A presence event in the simplified shape (feature level 419): the
  // user's complete current pair, which replaces what we had. Zulip's shape
  // has no clock; presenced's transition events ("transition": "idle" or
  // "offline") carry a server_timestamp. Without one, the estimated server
  // clock is the reference (§6.4).
  function handlePresenceEvent(ev) {
    if (!ev.presences || typeof ev.presences !== 'object') return;
    const serverTs = typeof ev.server_timestamp === 'number' ? ev.server_timestamp : serverNowS();
    noteServerTime(ev.server_timestamp);
    for (const [key, entry] of Object.entries(ev.presences)) {
      const old = state.raw.get(key);
      state.raw.set(key, {
        server_timestamp: serverTs,
        active_timestamp: entry.active_timestamp,
        idle_timestamp: entry.idle_timestamp,
        // Transition events carry no clients: keep the ones we know.
        clients: entry.clients || (old ? old.clients : undefined),
      });
      if (!state.members.has(key)) refreshMembersSoon();
      recompute(key);
    }
  }

  // ------------------------------------------------------- user status

  // The fields present in `o` change `st` (Zulip's clients apply
  // user_status events this way). The emoji fields travel together; an
  // empty emoji_name clears the emoji. End times of 0 mean "no end".
  function applyUserStatus(st, o) {
    if (typeof o.away === 'boolean') st.away = o.away;
    if (typeof o.status_text === 'string') st.status_text = o.status_text;
    if (typeof o.emoji_name === 'string') {
      st.emoji_name = o.emoji_name;
      st.emoji_code = o.emoji_name && typeof o.emoji_code === 'string' ? o.emoji_code : '';
      st.reaction_type = o.emoji_name
        ? (typeof o.reaction_type === 'string' ? o.reaction_type : 'unicode_emoji') : '';
    }
    if ('scheduled_end_time' in o) {
      st.scheduled_end_time = o.scheduled_end_time > 0 ? o.scheduled_end_time : 0;
    }
    if (typeof o.dnd === 'boolean') {
      st.dnd = o.dnd;
      if (!o.dnd) st.dnd_end_time = 0;
    }
    if ('dnd_end_time' in o) st.dnd_end_time = o.dnd_end_time > 0 ? o.dnd_end_time : 0;
    return st;
  }

  function emptyStatus() {
    return {
      status_text: '', emoji_name: '', emoji_code: '', reaction_type: '',
      away: false, scheduled_end_time: 0, dnd: false, dnd_end_time: 0,
    };
  }

  function handleUserStatusEvent(ev) {
    if (typeof ev.user_id !== 'number') return;
    const key = String(ev.user_id);
    state.userStatus.set(key, applyUserStatus(state.userStatus.get(key) || emptyStatus(), ev));
  }

  // "1f1fa-1f1f8" -> the characters; null unless every part is a code point.
  function emojiChars(code) {
    if (typeof code !== 'string' || !/^[0-9a-f]{1,6}(-[0-9a-f]{1,6})*$/i.test(code)) return null;
    const points = code.split('-').map((h) => parseInt(h, 16));
    if (points.some((p) => p < 0x20 || (p >= 0x7f && p < 0xa0) ||
      (p >= 0xd800 && p <= 0xdfff) || p > 0x10ffff)) return null;
    return String.fromCodePoint(...points);
  }

  function emojiText(st) {
    if (!st.emoji_name) return '';
    if (!st.reaction_type || st.reaction_type === 'unicode_emoji') {
      const chars = emojiChars(st.emoji_code);
      if (chars) return chars;
    }
    return `:${st.emoji_name}:`;
  }

  // "until 15:00" today, "until tomorrow 15:00", else "until Nov 14" (the
  // viewer's time zone; the server's clock as estimated).
  function untilText(endS) {
    const end = new Date(endS * 1000);
    const now = new Date(serverNowS() * 1000);
    const day = (d) => Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
    const days = Math.round((day(end) - day(now)) / 86400000);
    const clock = `${String(end.getHours()).padStart(2, '0')}:${String(end.getMinutes()).padStart(2, '0')}`;
    if (days <= 0) return `until ${clock}`;
    if (days === 1) return `until tomorrow ${clock}`;
    const opts = { day: 'numeric', month: 'short' };
    if (days > 365 && end.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
    return `until ${end.toLocaleDateString('en-US', opts)}`;
  }

  // What a row shows of `key`'s status now: {emoji, text, until, dnd,
  // dndUntil}; ends that passed are honoured before the server says so.
  function shownStatus(key) {
    const st = state.userStatus.get(key);
    const out = { emoji: '', text: '', until: '', dnd: false, dndUntil: '' };
    if (!st) return out;
    const now = serverNowS();
    if (!st.scheduled_end_time || now < st.scheduled_end_time) {
      out.emoji = emojiText(st);
      out.text = st.status_text || '';
      if (st.scheduled_end_time && (out.emoji || out.text)) out.until = untilText(st.scheduled_end_time);
    }
    out.dnd = Boolean(st.dnd) && (!st.dnd_end_time || now < st.dnd_end_time);
    if (out.dnd && st.dnd_end_time) out.dndUntil = untilText(st.dnd_end_time);
    return out;
  }

  // datetime-local value ("2023-11-14T15:00", the viewer's wall clock) ->
  // unix seconds; 0 when empty.
  function endFromInput(value) {
    if (!value) return 0;
    const ms = new Date(value).getTime();
    if (!Number.isFinite(ms)) return NaN;
    return Math.round(ms / 1000);
  }

  function showStatusError(message) {
    ui.statusError.hidden = !message;
    ui.statusError.textContent = message || '';
  }

  async function postOwnStatus(params) {
    showStatusError('');
    try {
      const r = await api('POST', '/users/me/status', params);
      // A server without presenced's extension ignores the end time.
      const ignored = Array.isArray(r.ignored_parameters_unsupported)
        ? r.ignored_parameters_unsupported : [];
      if (ignored.includes('scheduled_end_time')) {
        showStatusError('This server does not support end times: the status was set without one.');
      }
      return true;
    } catch (e) {
      showStatusError(e instanceof ApiError ? `The server refused: ${e.message}`
        : 'Cannot reach the server. Try again.');
      return false;
    }
  }

  ui.statusForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!session || !state) return;
    const params = { status_text: ui.statusText.value.trim() };
    const [name, code] = ui.statusEmoji.value.split(':');
    params.emoji_name = name || '';
    if (name) {
      params.emoji_code = code;
      params.reaction_type = 'unicode_emoji';
    }
    const end = endFromInput(ui.statusEnd.value);
    if (Number.isNaN(end)) {
      showStatusError('The end time is not a date and time.');
      return;
    }
    if (end) params.scheduled_end_time = String(end);
    ui.statusSave.disabled = true;
    try {
      await postOwnStatus(params);
    } finally {
      ui.statusSave.disabled = false;
    }
  });

  ui.statusClear.addEventListener('click', async () => {
    if (!session || !state) return;
    if (await postOwnStatus({ status_text: '', emoji_name: '' })) {
      ui.statusText.value = '';
      ui.statusEmoji.value = '';
      ui.statusEnd.value = '';
    }
  });

  ui.dndToggle.addEventListener('change', async () => {
    if (!session || !state) return;
    const on = ui.dndToggle.checked;
    const params = { dnd: on ? 'true' : 'false' };
    if (on) {
      const end = endFromInput(ui.dndEnd.value);
      if (Number.isNaN(end)) {
        showStatusError('The end time is not a date and time.');
        ui.dndToggle.checked = false;
        return;
      }
      params.dnd_end_time = String(end || 0);
    }
    if (!(await postOwnStatus(params))) ui.dndToggle.checked = !on;
  });

  function handleEvent(ev) {
    switch (ev.type) {
      case 'presence':
        handlePresenceEvent(ev);
        break;
      case 'user_status':
        handleUserStatusEvent(ev);
        break;
      case 'user_settings':
        if (ev.property === 'presence_enabled' && typeof ev.value === 'boolean') {
          state.presenceEnabled = ev.value;
          if (state.myKey) recompute(state.myKey);
        }
        break;
      case 'update_global_notifications':
        if (ev.notification_name === 'presence_enabled' && typeof ev.setting === 'boolean') {
          state.presenceEnabled = ev.setting;
          if (state.myKey) recompute(state.myKey);
        }
        break;
      default:
        break; // heartbeat and anything else
    }
  }

  // ------------------------------------------------------------- members

  async function loadMembers(gen) {
    const json = await api('GET', '/users');
    if (gen !== generation) return;
    const members = new Map();
    const me = session.email.trim().toLowerCase();
    for (const m of json.members || []) {
      if (m.is_bot || m.is_active === false) continue;
      const key = String(m.user_id);
      const joined = m.date_joined ? Date.parse(m.date_joined) / 1000 : 0;
      members.set(key, {
        key,
        userId: m.user_id,
        email: m.email || '',
        name: m.full_name || m.email || `User ${m.user_id}`,
        dateJoined: Number.isFinite(joined) ? joined : 0,
      });
      if ((m.email || '').toLowerCase() === me) state.myKey = key;
    }
    state.members = members;
    state.membersFetchedAt = Date.now();
    for (const key of state.members.keys()) recompute(key);
    scheduleRender();
  }

  let membersRefreshTimer = null;
  function refreshMembersSoon() {
    if (membersRefreshTimer) return;
    const gen = generation;
    const wait = Math.max(0, state.membersFetchedAt + MEMBERS_REFRESH_MIN_MS - Date.now());
    membersRefreshTimer = setTimeout(() => {
      membersRefreshTimer = null;
      if (gen !== generation) return;
      loadMembers(gen).catch(() => {}); // the next unknown id retries
    }, wait);
  }

  // ------------------------------------------------------------ register

  async function register(gen) {
    const params = {
      event_types: JSON.stringify(['presence', 'realm', 'user_settings', 'user_status']),
      client_capabilities: JSON.stringify({
        simplified_presence_events: true,
        presence_transitions: true,
        user_settings_object: true,
        // presenced's extension: which device each user is on.
        presence_per_client: true,
        // presenced's extension: scheduled ends and do-not-disturb.
        user_status_extensions: true,
      }),
      presence_history_limit_days: String(HISTORY_DAYS),
      slim_presence: 'true',
    };
    const r = await api('POST', '/register', params);
    if (gen !== generation) return;
    state.queueId = r.queue_id;
    state.lastEventId = typeof r.last_event_id === 'number' ? r.last_event_id : -1;
    if (r.server_presence_ping_interval_seconds > 0) {
      state.pingIntervalS = r.server_presence_ping_interval_seconds;
    }
    if (r.server_presence_offline_threshold_seconds > 0) {
      state.thresholdS = r.server_presence_offline_threshold_seconds;
    }
    if (r.event_queue_longpoll_timeout_seconds > 0) {
      state.longpollS = r.event_queue_longpoll_timeout_seconds;
    }
    state.presenceDisabled = r.realm_presence_disabled === true;
    if (r.user_settings && typeof r.user_settings.presence_enabled === 'boolean') {
      state.presenceEnabled = r.user_settings.presence_enabled;
    } else if (typeof r.presence_enabled === 'boolean') {
      state.presenceEnabled = r.presence_enabled;
    }
    // A snapshot replaces what we had (a re-register after a lost queue).
    state.userStatus = new Map();
    for (const [key, st] of Object.entries(r.user_status || {})) {
      if (st && typeof st === 'object') state.userStatus.set(key, applyUserStatus(emptyStatus(), st));
    }
    state.raw = new Map();
    state.status = new Map();
    state.lastUpdateId = -1;
    setInfo(r.presences || {}, r.server_timestamp, r.presence_last_update_id);
    for (const key of state.members.keys()) recompute(key);
  }

  // Everything from scratch: names, then a snapshot with a new queue.
  async function resync(gen) {
    await loadMembers(gen);
    if (gen !== generation) return;
    await register(gen);
  }

  // ------------------------------------------------------- the ping loop

  function reportStatus() {
    return state.clientActive ? 'active' : 'idle';
  }

  async function ping(gen, pingOnly) {
    const params = {
      status: reportStatus(),
      ping_only: pingOnly ? 'true' : 'false',
      new_user_input: state.newUserInput ? 'true' : 'false',
      last_update_id: String(state.lastUpdateId),
      per_client: 'true',
    };
    const r = await api('POST', '/users/me/presence', params);
    if (gen !== generation) return;
    state.newUserInput = false;
    if (!pingOnly) {
      setInfo(r.presences || {}, r.server_timestamp, r.presence_last_update_id);
    }
  }

  // setTimeout, not setInterval: no burst of catch-up pings after a
  // suspend (§6.2).
  function schedulePing(gen) {
    clearTimeout(state.pingTimer);
    state.pingTimer = setTimeout(async () => {
      if (gen !== generation) return;
      try {
        await ping(gen, false);
      } catch (e) {
        if (gen !== generation) return;
        if (e instanceof ApiError && e.status === 401) {
          signOut('Your email or API key is no longer accepted. Please sign in again.');
          return;
        }
        // The next tick tries again.
      }
      if (gen === generation) schedulePing(gen);
    }, state.pingIntervalS * 1000);
  }

  function pingNow(gen) {
    ping(gen, true).catch(() => {});
  }

  // ---------------------------------------------- activity (idle/active)

  // Input (and, without new_user_input, window focus) makes the client
  // active again.
  function onUserInput(ev) {
    if (!session || !state) return;
    state.lastInputAt = Date.now();
    if (ev.type !== 'focus') state.newUserInput = true;
    if (!state.clientActive) {
      state.clientActive = true;
      pingNow(generation); // coming back is announced at once (§6.1)
    }
  }

  function checkIdle() {
    if (!session || !state) return;
    if (state.clientActive && Date.now() - state.lastInputAt >= IDLE_AFTER_MS) {
      state.clientActive = false; // the next periodic ping says "idle"
    }
  }

  for (const type of ['mousemove', 'pointerdown', 'keydown', 'touchstart', 'wheel', 'scroll']) {
    window.addEventListener(type, onUserInput, { passive: true, capture: true });
  }
  window.addEventListener('focus', onUserInput);
  setInterval(checkIdle, 10000);

  // ----------------------------------------------------- the event loop

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function backoffMs(failures, retryAfterS) {
    if (retryAfterS && retryAfterS > 0) return Math.min(retryAfterS * 1000, 5 * 60000);
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(failures - 1, 5));
    return base / 2 + Math.random() * (base / 2);
  }

  async function eventLoop(gen) {
    let failures = 0;
    let lostQueues = 0; // BAD_EVENT_QUEUE_ID in a row
    while (gen === generation) {
      try {
        if (!state.queueId) {
          await resync(gen);
          if (gen !== generation) return;
          setConnection('live');
        }
        // After a failure, a non-blocking poll first: a long poll that the
        // server parks would not tell us for a minute that we are back.
        const params = {
          queue_id: state.queueId,
          last_event_id: String(state.lastEventId),
        };
        if (failures > 0) params.dont_block = 'true';
        const r = await api('GET', '/events', params,
          { timeoutMs: (state.longpollS + 10) * 1000 });
        if (gen !== generation) return;
        failures = 0;
        lostQueues = 0;
        setConnection('live');
        for (const ev of r.events || []) {
          if (typeof ev.id === 'number' && ev.id > state.lastEventId) state.lastEventId = ev.id;
          handleEvent(ev);
        }
        scheduleRender();
      } catch (e) {
        if (gen !== generation) return;
        if (e instanceof ApiError && e.code === 'BAD_EVENT_QUEUE_ID') {
          // The queue was freed or dropped: start over with a new one (at
          // once the first time, then more slowly).
          state.queueId = null;
          setConnection('connecting');
          lostQueues += 1;
          if (lostQueues > 1) await sleep(backoffMs(lostQueues - 1, null));
          continue;
        }
        if (e instanceof ApiError && e.status === 401) {
          signOut('Your email or API key is no longer accepted. Please sign in again.');
          return;
        }
        failures += 1;
        const wait = backoffMs(failures, e instanceof ApiError ? e.retryAfterS : null);
        setConnection('reconnecting', wait);
        await sleep(wait);
      }
    }
  }

  // ---------------------------------------------------------- rendering

  function setConnection(kind, waitMs) {
    ui.connection.dataset.state = kind;
    if (kind === 'live') ui.connection.textContent = 'Live';
    else if (kind === 'connecting') ui.connection.textContent = 'Connecting…';
    else if (kind === 'reconnecting') {
      ui.connection.textContent = `Reconnecting in ${Math.max(1, Math.round(waitMs / 1000))} s…`;
    } else ui.connection.textContent = 'Offline';
  }

  // "Last active" as Zulip's buddy list says it (§6.5).
  function lastSeenText(status, lastActive, never) {
    if (status === 'active') return 'Active now';
    if (status === 'idle') return 'Idle';
    if (never) return 'Not active yet';
    if (!lastActive) return 'Not active in the last year';
    const now = serverNowS();
    const minutes = Math.max(0, Math.floor((now - lastActive) / 60));
    if (minutes < 60) return minutes === 1 ? 'Active 1 minute ago' : `Active ${minutes} minutes ago`;
    const hours = Math.floor(minutes / 60);
    const then = new Date(lastActive * 1000);
    const today = new Date(now * 1000);
    if (hours < 24) return hours === 1 ? 'Active an hour ago' : `Active ${hours} hours ago`;
    const day = (d) => Date.UTC(d.getFullYear(), d.getMonth(), d.getDate());
    const days = Math.round((day(today) - day(then)) / 86400000);
    if (days <= 1) return 'Active yesterday';
    if (days < 90) return `Active ${days} days ago`;
    const opts = { day: 'numeric', month: 'short' };
    if (then.getFullYear() !== today.getFullYear()) opts.year = 'numeric';
    return `Active ${then.toLocaleDateString(undefined, opts)}`;
  }

  const LEVEL = { active: 1, idle: 2, offline: 3 };
  let renderQueued = false;

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function render() {
    if (!session || !state) return;
    ui.notice.hidden = !state.presenceDisabled;
    if (state.presenceDisabled) {
      ui.notice.textContent = 'Presence is turned off in this organisation.';
      ui.people.replaceChildren();
      ui.summary.textContent = '';
      ui.empty.hidden = true;
      return;
    }
    const keys = new Set(state.members.keys());
    for (const key of state.raw.keys()) keys.add(key);
    const filter = ui.filter.value.trim().toLowerCase();
    const rows = [];
    const counts = { active: 0, idle: 0, offline: 0 };
    for (const key of keys) {
      const m = state.members.get(key) ||
        { key, userId: Number(key), email: '', name: `User ${key}`, dateJoined: 0 };
      const s = currentStatus(key);
      counts[s.status] += 1;
      if (filter && !m.name.toLowerCase().includes(filter) &&
          !m.email.toLowerCase().includes(filter)) continue;
      rows.push({ m, s, me: key === state.myKey });
    }
    rows.sort((a, b) => (b.me - a.me) ||
      (LEVEL[a.s.status] - LEVEL[b.s.status]) ||
      a.m.name.localeCompare(b.m.name, undefined, { sensitivity: 'base' }));

    const frag = document.createDocumentFragment();
    for (const { m, s, me } of rows) {
      const li = document.createElement('li');
      li.className = 'user';
      li.dataset.key = m.key;
      li.dataset.email = m.email;
      li.dataset.status = s.status;
      if (m.userId !== null && m.userId !== undefined) li.dataset.userId = String(m.userId);
      if (me) li.dataset.me = 'true';

      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.dataset.status = s.status;
      dot.setAttribute('role', 'img');
      dot.setAttribute('aria-label', s.status[0].toUpperCase() + s.status.slice(1));
      dot.title = dot.getAttribute('aria-label');

      const who = document.createElement('div');
      who.className = 'who';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = m.name;
      name.title = m.name;
      if (me) {
        const tag = document.createElement('span');
        tag.className = 'me-tag';
        tag.textContent = ' (you)';
        name.append(tag);
      }
      const shown = shownStatus(m.key);
      if (shown.dnd) {
        li.dataset.dnd = 'true';
        const dnd = document.createElement('span');
        dnd.className = 'dnd';
        dnd.textContent = '\u2298'; // ⊘
        const label = shown.dndUntil ? `Do not disturb ${shown.dndUntil}` : 'Do not disturb';
        dnd.setAttribute('role', 'img');
        dnd.setAttribute('aria-label', label);
        dnd.title = label;
        name.append(dnd);
      }
      who.append(name);
      if (shown.emoji || shown.text) {
        const line = document.createElement('span');
        line.className = 'user-status';
        if (shown.emoji) {
          const emoji = document.createElement('span');
          emoji.className = 'status-emoji';
          emoji.textContent = shown.emoji;
          line.append(emoji);
        }
        if (shown.text) {
          const text = document.createElement('span');
          text.className = 'status-text';
          text.textContent = shown.emoji ? ` ${shown.text}` : shown.text;
          line.append(text);
        }
        if (shown.until) {
          const until = document.createElement('span');
          until.className = 'status-until';
          until.textContent = ` · ${shown.until}`;
          line.append(until);
        }
        line.title = line.textContent;
        who.append(line);
      }
      if (me) {
        const parts = [shown.emoji, shown.text, shown.until].filter(Boolean);
        if (shown.dnd) parts.push(shown.dndUntil ? `do not disturb ${shown.dndUntil}` : 'do not disturb');
        ui.myStatusNow.textContent = parts.length ? parts.join(' ') : 'none set';
        if (document.activeElement !== ui.dndToggle) ui.dndToggle.checked = shown.dnd;
      }
      if (m.email && m.email !== m.name) {
        const email = document.createElement('span');
        email.className = 'email';
        email.textContent = m.email;
        email.title = m.email;
        who.append(email);
      }

      const seen = document.createElement('span');
      seen.className = 'seen';
      seen.textContent = me && s.status === 'offline'
        ? 'Invisible' : lastSeenText(s.status, s.lastActive, s.never);
      const device = me ? '' : deviceOf(m.key, s.status);
      if (device) {
        li.dataset.device = device;
        seen.textContent += ` on ${device}`;
      }

      li.append(dot, who, seen);
      frag.append(li);
    }
    ui.people.replaceChildren(frag);
    const total = counts.active + counts.idle + counts.offline;
    ui.summary.textContent =
      `${counts.active} active · ${counts.idle} idle · ${counts.offline} offline`;
    ui.summary.title = `${total} people`;
    ui.empty.hidden = rows.length > 0;
    ui.empty.textContent = filter ? 'Nobody matches.' : 'Nobody here yet.';
  }

  ui.filter.addEventListener('input', scheduleRender);
  setInterval(() => { if (session) scheduleRender(); }, 30000); // relative times

  // --------------------------------------------------- sign in and out

  function showSignIn(message) {
    ui.listView.hidden = true;
    ui.sessionControls.hidden = true;
    ui.signInView.hidden = false;
    ui.signInError.hidden = !message;
    ui.signInError.textContent = message || '';
    ui.signInButton.disabled = false;
  }

  function showList() {
    ui.signInView.hidden = true;
    ui.listView.hidden = false;
    ui.sessionControls.hidden = false;
  }

  function describeSignInError(e) {
    if (e instanceof ApiError) {
      if (e.status === 401) return `Sign-in failed: ${e.message}. Check the email and API key.`;
      if (e.code === 'NONEXISTENT_SUBDOMAIN') return 'There is no organisation at this address.';
      return `The server refused: ${e.message}`;
    }
    return 'Cannot reach the server. Try again.';
  }

  // `resumed`: the credentials come from this tab's sessionStorage (a
  // reload), so the list shows at once while it loads.
  async function start(creds, resumed) {
    const gen = ++generation;
    session = creds;
    state = freshState();
    setConnection('connecting');
    if (resumed) showList();
    try {
      await resync(gen);
    } catch (e) {
      if (gen !== generation) return;
      session = null;
      state = null;
      sessionStorage.removeItem(STORAGE_KEY);
      showSignIn(describeSignInError(e));
      return;
    }
    if (gen !== generation) return;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(creds));
    showList();
    setConnection('live');
    ui.realmName.textContent = realmName || '';
    scheduleRender();
    pingNow(gen); // announce this client at once (§6.2)
    schedulePing(gen);
    eventLoop(gen);
  }

  function deleteQueue(keepalive) {
    if (!session || !state || !state.queueId) return;
    api('DELETE', '/events', { queue_id: state.queueId }, { keepalive }).catch(() => {});
  }

  function signOut(message) {
    deleteQueue(false);
    generation += 1;
    if (state) clearTimeout(state.pingTimer);
    session = null;
    state = null;
    sessionStorage.removeItem(STORAGE_KEY);
    ui.people.replaceChildren();
    ui.apiKey.value = '';
    showSignIn(message);
  }

  ui.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const email = ui.email.value.trim();
    const apiKey = ui.apiKey.value.trim();
    if (!email || !apiKey) {
      showSignIn('Enter your email and API key.');
      return;
    }
    ui.signInButton.disabled = true;
    ui.signInError.hidden = true;
    start({ email, apiKey });
  });
  ui.signOut.addEventListener('click', () => signOut(''));
  window.addEventListener('pagehide', () => deleteQueue(true));

  // The organisation's name, for the header (no authentication needed).
  let realmName = '';
  fetch('/api/v1/server_settings', { credentials: 'omit', cache: 'no-store' })
    .then((r) => r.json())
    .then((j) => {
      realmName = (j && j.realm_name) || '';
      if (session) ui.realmName.textContent = realmName;
    })
    .catch(() => {});

  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
  } catch {
    saved = null;
  }
  if (saved && typeof saved.email === 'string' && typeof saved.apiKey === 'string') {
    ui.email.value = saved.email;
    start(saved, true);
  } else {
    showSignIn('');
  }
}());
