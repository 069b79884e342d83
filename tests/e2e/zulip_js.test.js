// presenced against the official Zulip JavaScript client, zulip-js 2.1.0 from
// npm, unmodified: its queues.register, events.retrieve, queues.deregister
// and callEndpoint for the presence endpoints. zulip-js sends POST bodies as
// multipart/form-data (npm form-data) and GET/DELETE parameters in the query
// string, with HTTP Basic auth, exactly as it does against Zulip.
//
// Every answer is compared with what Zulip answers
// (shared/reference/zulip-presence.md sections 2-4). Any difference is a
// server bug: the test is not to be bent around it.
//
// Starts build/debug/presenced (PRESENCED_BINARY) with --test-clock on
// 127.0.0.1:0. Run: cd tests/e2e && npm ci && node --test zulip_js.test.js
// (or: ctest --preset debug -R node.e2e)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import zulipInit from 'zulip-js';

import { BASE_TIME, startPresenced } from './lib/presenced.js';

const T0 = BASE_TIME;

describe('zulip-js 2.1.0 against presenced', { timeout: 120_000 }, () => {
  let server;
  let alice; // users: {email, api_key, user_id, ...}
  let bob;
  let carol;
  let robot;
  let za; // zulip-js clients
  let zb;
  let zc;
  let zr;
  const queues = {}; // shape -> queue_id
  const lastIds = {}; // shape -> last event id seen

  const client = (user) => zulipInit({
    username: user.email, apiKey: user.api_key, realm: server.baseUrl,
  });

  // Zulip's legacy entry for a user whose last active and last connected
  // time are both `ts` (§2.5).
  const legacyActive = (ts) => ({
    aggregated: { client: 'website', status: 'active', timestamp: ts },
    website: { client: 'website', status: 'active', timestamp: ts, pushable: false },
  });

  before(async () => {
    server = await startPresenced({ extraArgs: ['--heartbeat-seconds', '2'] });
    await server.setClock(T0);
    const realm = await server.createRealm('', 'Example Co');
    const rid = realm.realm_id;
    alice = await server.createUser(rid, { email: 'alice@example.com', full_name: 'Alice' });
    bob = await server.createUser(rid, { email: 'bob@example.com', full_name: 'Bob' });
    carol = await server.createUser(rid, { email: 'carol@example.com', full_name: 'Carol' });
    robot = await server.createUser(rid, {
      email: 'robot-bot@example.com', full_name: 'Robot', is_bot: true,
    });
    [za, zb, zc, zr] = await Promise.all([alice, bob, carol, robot].map(client));
  });

  after(async () => {
    if (server) {
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null },
        `presenced did not exit cleanly:\n${server.stderr().slice(-5000)}`);
    }
  });

  it('server.settings answers without authentication', async () => {
    const r = await za.server.settings();
    assert.equal(r.result, 'success', JSON.stringify(r));
    assert.equal(typeof r.zulip_feature_level, 'number');
    assert.ok(r.zulip_feature_level >= 263, 'last_update_id needs feature level 263');
    assert.equal(r.realm_name, 'Example Co');
  });

  it('queues.register: legacy, slim and simplified queues with a snapshot', async () => {
    const legacy = await za.queues.register({ event_types: ['presence', 'realm'] });
    assert.equal(legacy.result, 'success', JSON.stringify(legacy));
    assert.equal(legacy.msg, '');
    assert.equal(typeof legacy.queue_id, 'string');
    assert.ok(legacy.queue_id.length > 0);
    assert.equal(legacy.last_event_id, -1);
    assert.deepEqual(legacy.presences, {}, 'nobody has reported yet');
    assert.equal(legacy.server_timestamp, T0);
    assert.equal(legacy.presence_last_update_id, -1);
    assert.equal(legacy.server_presence_ping_interval_seconds, 60);
    assert.equal(legacy.server_presence_offline_threshold_seconds, 200);
    assert.equal(legacy.realm_presence_disabled, false);
    assert.equal(legacy.ignored_parameters_unsupported, undefined);
    queues.legacy = legacy.queue_id;

    const slim = await za.queues.register({ event_types: ['presence'], slim_presence: 'true' });
    assert.equal(slim.result, 'success', JSON.stringify(slim));
    assert.deepEqual(slim.presences, {});
    assert.equal(slim.server_presence_ping_interval_seconds, undefined,
      'realm fields only when "realm" is fetched');
    queues.slim = slim.queue_id;

    const modern = await za.queues.register({
      event_types: ['presence'],
      client_capabilities: JSON.stringify({ simplified_presence_events: true }),
    });
    assert.equal(modern.result, 'success', JSON.stringify(modern));
    assert.deepEqual(modern.presences, {});
    queues.modern = modern.queue_id;

    assert.equal(new Set(Object.values(queues)).size, 3, 'three distinct queues');
    for (const k of Object.keys(queues)) lastIds[k] = -1;
  });

  it('events.retrieve with dont_block answers at once with no events', async () => {
    const r = await za.events.retrieve({
      queue_id: queues.legacy, last_event_id: -1, dont_block: true,
    });
    assert.equal(r.result, 'success', JSON.stringify(r));
    assert.deepEqual(r.events, []);
    assert.equal(r.queue_id, queues.legacy);
  });

  it('POST users/me/presence (legacy) records and answers keyed by email', async () => {
    const r = await zb.callEndpoint('/users/me/presence', 'POST', { status: 'active' });
    assert.deepEqual(r, {
      result: 'success',
      msg: '',
      presences: { [bob.email]: legacyActive(T0) },
      server_timestamp: T0,
      presence_last_update_id: 1,
    });
  });

  it('events.retrieve: the presence event in each queue\'s shape', async () => {
    const website = { client: 'website', status: 'active', timestamp: T0, pushable: false };
    const want = {
      legacy: {
        type: 'presence', user_id: bob.user_id, email: bob.email,
        server_timestamp: T0, presence: { website }, id: 0,
      },
      slim: {
        type: 'presence', user_id: bob.user_id,
        server_timestamp: T0, presence: { website }, id: 0,
      },
      modern: {
        type: 'presence',
        presences: { [bob.user_id]: { active_timestamp: T0, idle_timestamp: T0 } },
        id: 0,
      },
    };
    for (const shape of ['legacy', 'slim', 'modern']) {
      const r = await za.events.retrieve({ queue_id: queues[shape], last_event_id: lastIds[shape] });
      assert.equal(r.result, 'success', `${shape}: ${JSON.stringify(r)}`);
      assert.deepEqual(r.events, [want[shape]], shape);
      lastIds[shape] = 0;
    }
  });

  it('POST users/me/presence with slim_presence: keyed by user id', async () => {
    const r = await za.callEndpoint('/users/me/presence', 'POST', {
      status: 'active', slim_presence: 'true', new_user_input: 'true',
    });
    assert.deepEqual(r, {
      result: 'success',
      msg: '',
      presences: {
        [alice.user_id]: { active_timestamp: T0, idle_timestamp: T0 },
        [bob.user_id]: { active_timestamp: T0, idle_timestamp: T0 },
      },
      server_timestamp: T0,
      presence_last_update_id: 2,
    });
    // Alice's first report created her row: an event on every queue.
    const website = { client: 'website', status: 'active', timestamp: T0, pushable: false };
    const want = {
      legacy: {
        type: 'presence', user_id: alice.user_id, email: alice.email,
        server_timestamp: T0, presence: { website }, id: 1,
      },
      slim: {
        type: 'presence', user_id: alice.user_id,
        server_timestamp: T0, presence: { website }, id: 1,
      },
      modern: {
        type: 'presence',
        presences: { [alice.user_id]: { active_timestamp: T0, idle_timestamp: T0 } },
        id: 1,
      },
    };
    for (const shape of ['legacy', 'slim', 'modern']) {
      const ev = await za.events.retrieve({
        queue_id: queues[shape], last_event_id: lastIds[shape], dont_block: true,
      });
      assert.equal(ev.result, 'success', `${shape}: ${JSON.stringify(ev)}`);
      assert.deepEqual(ev.events, [want[shape]], shape);
      lastIds[shape] = 1;
    }
  });

  it('POST users/me/presence with last_update_id: incremental, echoed when nothing changed',
    async () => {
      const full = await za.callEndpoint('/users/me/presence', 'POST', {
        status: 'active', last_update_id: '-1',
      });
      assert.equal(full.result, 'success', JSON.stringify(full));
      assert.deepEqual(Object.keys(full.presences).sort(),
        [String(alice.user_id), String(bob.user_id)].sort());
      assert.equal(full.presence_last_update_id, 2, 'a report within 55 s writes nothing');

      // A minute later Alice's report writes her row again (60 s > 55 s).
      await server.setClock(T0 + 60);
      const inc = await za.callEndpoint('/users/me/presence', 'POST', {
        status: 'active', last_update_id: '2',
      });
      assert.deepEqual(inc, {
        result: 'success',
        msg: '',
        presences: {
          [alice.user_id]: { active_timestamp: T0 + 60, idle_timestamp: T0 + 60 },
        },
        server_timestamp: T0 + 60,
        presence_last_update_id: 3,
      });

      const none = await za.callEndpoint('/users/me/presence', 'POST', {
        status: 'active', last_update_id: '3',
      });
      assert.deepEqual(none, {
        result: 'success',
        msg: '',
        presences: {},
        server_timestamp: T0 + 60,
        presence_last_update_id: 3,
      });
    });

  it('POST users/me/presence with ping_only answers only result and msg', async () => {
    const r = await zb.callEndpoint('/users/me/presence', 'POST', {
      status: 'idle', ping_only: 'true', last_update_id: '3',
    });
    assert.deepEqual(r, { result: 'success', msg: '' });
  });

  it('GET realm/presence: legacy, keyed by email, no update id', async () => {
    const r = await zc.callEndpoint('/realm/presence', 'GET');
    assert.deepEqual(r, {
      result: 'success',
      msg: '',
      presences: {
        [alice.email]: legacyActive(T0 + 60),
        // Bob's idle report at T0 + 60 moved only last_connected (60 > 55):
        // A + 70 s >= C, so the legacy status is still "active" at A.
        [bob.email]: legacyActive(T0),
      },
      server_timestamp: T0 + 60,
    });
    const fromBot = await zr.callEndpoint('/realm/presence', 'GET');
    assert.equal(fromBot.result, 'success', 'bots may read realm presence');
    assert.deepEqual(Object.keys(fromBot.presences).sort(), [alice.email, bob.email]);
  });

  it('GET users/{id}/presence and users/{email}/presence', async () => {
    const want = {
      result: 'success',
      msg: '',
      presence: {
        aggregated: { status: 'active', timestamp: T0 },
        website: { status: 'active', timestamp: T0 },
      },
    };
    assert.deepEqual(await zc.callEndpoint(`/users/${bob.user_id}/presence`, 'GET'), want);
    assert.deepEqual(await zc.callEndpoint(`/users/${bob.email}/presence`, 'GET'), want);

    // More than 200 s after Bob's timestamp: "offline" in aggregated only.
    await server.setClock(T0 + 201);
    assert.deepEqual(await zc.callEndpoint(`/users/${bob.user_id}/presence`, 'GET'), {
      result: 'success',
      msg: '',
      presence: {
        aggregated: { status: 'offline', timestamp: T0 },
        website: { status: 'active', timestamp: T0 },
      },
    });
  });

  it('GET users/{id}/presence errors are Zulip\'s', async () => {
    assert.deepEqual(await za.callEndpoint(`/users/${carol.user_id}/presence`, 'GET'), {
      result: 'error', msg: `No presence data for ${carol.user_id}`, code: 'BAD_REQUEST',
    });
    assert.deepEqual(await za.callEndpoint(`/users/${carol.email}/presence`, 'GET'), {
      result: 'error', msg: `No presence data for ${carol.email}`, code: 'BAD_REQUEST',
    });
    assert.deepEqual(await za.callEndpoint('/users/987654/presence', 'GET'), {
      result: 'error', msg: 'No such user', code: 'BAD_REQUEST',
    });
    assert.deepEqual(await za.callEndpoint(`/users/${robot.user_id}/presence`, 'GET'), {
      result: 'error', msg: 'Presence is not supported for bot users.', code: 'BAD_REQUEST',
    });
    assert.deepEqual(await za.callEndpoint('/users/me/presence', 'GET'), {
      result: 'error', msg: 'Method Not Allowed', allowed_methods: ['POST'],
    });
  });

  it('POST users/me/presence errors are Zulip\'s', async () => {
    assert.deepEqual(await za.callEndpoint('/users/me/presence', 'POST', { status: 'away' }), {
      result: 'error', msg: 'Invalid status: away', code: 'BAD_REQUEST',
    });
    assert.deepEqual(await za.callEndpoint('/users/me/presence', 'POST', {}), {
      result: 'error', msg: "Missing 'status' argument", code: 'REQUEST_VARIABLE_MISSING',
      var_name: 'status',
    });
    assert.deepEqual(await za.callEndpoint('/users/me/presence', 'POST', {
      status: 'active', slim_presence: 'yes',
    }), {
      result: 'error', msg: 'slim_presence is not valid JSON', code: 'BAD_REQUEST',
    });
    assert.deepEqual(await zr.callEndpoint('/users/me/presence', 'POST', { status: 'active' }), {
      result: 'error', msg: 'This endpoint does not accept bot requests.', code: 'BAD_REQUEST',
    });
    const stranger = await zulipInit({
      username: alice.email, apiKey: 'x'.repeat(32), realm: server.baseUrl,
    });
    const r = await stranger.callEndpoint('/users/me/presence', 'POST', { status: 'active' });
    assert.equal(r.result, 'error');
    assert.equal(r.code, 'UNAUTHORIZED');
  });

  it('events.retrieve long-polls until an event arrives; no extension events', async () => {
    // Carol's first report wakes the parked poll on the simplified queue.
    const parkedBefore = await server.gauge('presenced_parked_polls');
    const poll = za.events.retrieve({ queue_id: queues.modern, last_event_id: lastIds.modern });
    // Proof that the poll parked (the server counts it) before the event.
    await server.waitForGauge('presenced_parked_polls', (n) => n === parkedBefore + 1,
      'the poll to park');
    const report = await zc.callEndpoint('/users/me/presence', 'POST', {
      status: 'active', ping_only: 'true',
    });
    assert.deepEqual(report, { result: 'success', msg: '' });
    const r = await poll;
    assert.equal(r.result, 'success', JSON.stringify(r));
    const presence = r.events.filter((e) => e.type === 'presence');
    assert.deepEqual(presence.at(-1).presences, {
      [carol.user_id]: { active_timestamp: T0 + 201, idle_timestamp: T0 + 201 },
    });
    for (const e of r.events) {
      assert.ok(['presence', 'heartbeat'].includes(e.type), JSON.stringify(e));
      assert.equal(e.transition, undefined,
        'presence_transitions events only for queues that asked for them');
      lastIds.modern = Math.max(lastIds.modern, e.id);
    }
    // The legacy queue: Carol's event, with her email; Bob went offline
    // meanwhile, which a Zulip client works out itself (no event).
    const legacy = await za.events.retrieve({
      queue_id: queues.legacy, last_event_id: lastIds.legacy, dont_block: true,
    });
    assert.equal(legacy.result, 'success', JSON.stringify(legacy));
    const carolEvents = legacy.events.filter((e) => e.type === 'presence');
    assert.deepEqual(carolEvents.map(({ id, ...e }) => e), [{
      type: 'presence',
      user_id: carol.user_id,
      email: carol.email,
      server_timestamp: T0 + 201,
      presence: {
        website: { client: 'website', status: 'active', timestamp: T0 + 201, pushable: false },
      },
    }]);
  });

  it('events.retrieve answers a heartbeat when nothing happens', async () => {
    const drained = await za.events.retrieve({
      queue_id: queues.slim, last_event_id: lastIds.slim, dont_block: true,
    });
    assert.equal(drained.result, 'success', JSON.stringify(drained));
    for (const e of drained.events) lastIds.slim = Math.max(lastIds.slim, e.id);
    // presenced was started with --heartbeat-seconds 2.
    const r = await za.events.retrieve({ queue_id: queues.slim, last_event_id: lastIds.slim });
    assert.equal(r.result, 'success', JSON.stringify(r));
    assert.deepEqual(r.events, [{ type: 'heartbeat', id: lastIds.slim + 1 }]);
  });

  it('queues.deregister frees the queue; a later retrieve gets BAD_EVENT_QUEUE_ID', async () => {
    const r = await za.queues.deregister({ queue_id: queues.legacy });
    assert.deepEqual(r, { result: 'success', msg: '' });
    const gone = await za.events.retrieve({ queue_id: queues.legacy, last_event_id: -1 });
    assert.deepEqual(gone, {
      result: 'error',
      msg: `Bad event queue ID: ${queues.legacy}`,
      code: 'BAD_EVENT_QUEUE_ID',
      queue_id: queues.legacy,
    });
    const again = await za.queues.deregister({ queue_id: queues.legacy });
    assert.equal(again.code, 'BAD_EVENT_QUEUE_ID');
    // Another user cannot use or free Alice's queues.
    const foreign = await zb.events.retrieve({ queue_id: queues.modern, last_event_id: -1 });
    assert.equal(foreign.code, 'BAD_EVENT_QUEUE_ID');
    for (const q of [queues.slim, queues.modern]) {
      assert.deepEqual(await za.queues.deregister({ queue_id: q }), { result: 'success', msg: '' });
    }
  });
});

// Zulip's user status API (issue #18) through the same client. zulip-js
// 2.1.0 has no call of its own for it, so its generic callEndpoint sends
// the requests (multipart POST bodies, GET parameters in the query string).
describe('zulip-js 2.1.0: user status', { timeout: 120_000 }, () => {
  let server;
  let alice;
  let bob;
  let za;
  let zb;

  before(async () => {
    server = await startPresenced();
    await server.setClock(T0);
    const realm = await server.createRealm('', 'Example Co');
    alice = await server.createUser(realm.realm_id, { email: 'alice@example.com', full_name: 'Alice' });
    bob = await server.createUser(realm.realm_id, { email: 'bob@example.com', full_name: 'Bob' });
    const client = (user) => zulipInit({
      username: user.email, apiKey: user.api_key, realm: server.baseUrl,
    });
    [za, zb] = await Promise.all([alice, bob].map(client));
  });

  after(async () => {
    if (server) {
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null },
        `presenced did not exit cleanly:\n${server.stderr().slice(-5000)}`);
    }
  });

  it('sets a status, reads it back, and announces it to other queues', async () => {
    const q = await zb.queues.register({ event_types: ['user_status'] });
    assert.equal(q.result, 'success', JSON.stringify(q));
    assert.deepEqual(q.user_status, {}, 'nobody has a status yet');

    const set = await za.callEndpoint('/users/me/status', 'POST', {
      status_text: 'on vacation', emoji_name: 'car', emoji_code: '1f697',
      reaction_type: 'unicode_emoji',
    });
    assert.deepEqual(set, { result: 'success', msg: '' });

    const got = await zb.callEndpoint(`/users/${alice.user_id}/status`, 'GET', {});
    assert.deepEqual(got, {
      result: 'success',
      msg: '',
      status: {
        status_text: 'on vacation', emoji_name: 'car', emoji_code: '1f697',
        reaction_type: 'unicode_emoji',
      },
    });

    const ev = await zb.events.retrieve({ queue_id: q.queue_id, last_event_id: -1 });
    assert.equal(ev.result, 'success', JSON.stringify(ev));
    assert.deepEqual(ev.events, [{
      type: 'user_status', user_id: alice.user_id, status_text: 'on vacation',
      emoji_name: 'car', emoji_code: '1f697', reaction_type: 'unicode_emoji', id: 0,
    }]);

    const snapshot = await zb.queues.register({ fetch_event_types: ['user_status'] });
    assert.deepEqual(snapshot.user_status, {
      [alice.user_id]: {
        status_text: 'on vacation', emoji_name: 'car', emoji_code: '1f697',
        reaction_type: 'unicode_emoji',
      },
    });
  });

  it('clears the text with an empty string and keeps the emoji', async () => {
    const r = await za.callEndpoint('/users/me/status', 'POST', { status_text: '' });
    assert.deepEqual(r, { result: 'success', msg: '' });
    const got = await zb.callEndpoint(`/users/${alice.user_id}/status`, 'GET', {});
    assert.deepEqual(got.status, {
      emoji_name: 'car', emoji_code: '1f697', reaction_type: 'unicode_emoji',
    });
  });

  it('answers Zulip\'s errors', async () => {
    const none = await za.callEndpoint('/users/me/status', 'POST', {});
    assert.deepEqual(none, {
      result: 'error', msg: 'Client did not pass any new values.', code: 'BAD_REQUEST',
    });
    const long = await za.callEndpoint('/users/me/status', 'POST', { status_text: 'x'.repeat(61) });
    assert.deepEqual(long, {
      result: 'error', msg: 'status_text is too long (limit: 60 characters)', code: 'BAD_REQUEST',
    });
    const notAdmin = await za.callEndpoint(`/users/${bob.user_id}/status`, 'POST', { status_text: 'x' });
    assert.deepEqual(notAdmin, {
      result: 'error', msg: 'Insufficient permission', code: 'BAD_REQUEST',
    });
  });
});
