// Starts the real presenced binary for the Node test suites (tests/e2e and
// tests/web) and drives its admin API. Node built-ins only, loopback only.
//
// The binary comes from PRESENCED_BINARY (CTest sets it), or
// build/debug/presenced under the repository root.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// A fixed, recognisable base time for the test clock (2023-11-14T22:13:20Z).
export const BASE_TIME = 1_700_000_000;

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

export function binaryPath() {
  const p = process.env.PRESENCED_BINARY ||
    path.join(REPO_ROOT, 'build', 'debug', 'presenced');
  try {
    accessSync(p, constants.X_OK);
  } catch {
    throw new Error(`presenced binary not found or not executable: ${p} ` +
      '(build it, or set PRESENCED_BINARY)');
  }
  return p;
}

// One running presenced. `extraArgs` are appended to
// --listen 127.0.0.1:0 --data <fresh tmp dir> --test-clock.
export async function startPresenced({ extraArgs = [] } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'presenced-node-'));
  const adminToken = randomBytes(24).toString('hex');
  const args = ['--listen', '127.0.0.1:0', '--data', dataDir, '--test-clock',
    ...extraArgs];
  const child = spawn(binaryPath(), args, {
    env: { ...process.env, PRESENCED_ADMIN_TOKEN: adminToken },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = [];
  const stdout = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s) => stderr.push(s));
  child.stdout.setEncoding('utf8');

  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const baseUrl = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(
      `presenced did not print 'listening on' within ${START_TIMEOUT_MS} ms; ` +
      `stderr:\n${stderr.join('')}`)), START_TIMEOUT_MS);
    child.stdout.on('data', (s) => {
      stdout.push(s);
      buf += s;
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`presenced exited early (code ${code}, signal ` +
        `${signal}); stderr:\n${stderr.join('')}`));
    });
  });

  async function admin(method, route, body) {
    const res = await fetch(`${baseUrl}/admin/v1${route}`, {
      method,
      headers: {
        Authorization: `Bearer ${adminToken}`,
        'Content-Type': 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (res.status !== 200) {
      throw new Error(`admin ${method} ${route} -> ${res.status} ` +
        JSON.stringify(json));
    }
    return json;
  }

  return {
    baseUrl,
    dataDir,
    admin,
    stderr: () => stderr.join(''),
    setClock: (now) => admin('POST', '/clock', { now }),
    // One gauge of the server's own /metrics (e.g. presenced_parked_polls).
    async gauge(name) {
      const res = await fetch(`${baseUrl}/metrics`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`/metrics -> ${res.status}`);
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      if (line === undefined) throw new Error(`no ${name} in /metrics`);
      return Number(line.slice(name.length + 1));
    },
    // Re-reads gauge `name` until `pred(value)` holds; throws after
    // `timeoutMs` with `what` in the message.
    async waitForGauge(name, pred, what, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await this.gauge(name);
        if (pred(value)) return value;
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what} (${name} = ${value})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    createRealm: (subdomain, name) =>
      admin('POST', '/realms', { subdomain, name }),
    // Answers {user_id, api_key, email, full_name}.
    async createUser(realmId, user) {
      const r = await admin('POST', `/realms/${realmId}/users`, user);
      return { ...user, user_id: r.user_id, api_key: r.api_key };
    },
    // SIGTERM, then the exit status: presenced promises exit 0.
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const status = await exited;
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
      return status;
    },
  };
}

// A Zulip API call with HTTP Basic auth and a form-urlencoded body, the way
// Zulip's own web and mobile clients send them. Answers {status, json}.
export async function zulipCall(baseUrl, user, method, route, params = {}) {
  const auth = Buffer.from(`${user.email}:${user.api_key}`).toString('base64');
  const form = new URLSearchParams(params).toString();
  const init = { method, headers: { Authorization: `Basic ${auth}` } };
  let url = `${baseUrl}/api/v1${route}`;
  if (method === 'GET' || method === 'DELETE') {
    if (form) url += `?${form}`;
  } else {
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = form;
  }
  const res = await fetch(url, init);
  return { status: res.status, json: await res.json() };
}
