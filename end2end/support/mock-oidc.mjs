#!/usr/bin/env node
// mock-oidc.mjs — a loopback OpenID Connect provider for ecr-portal's tests (the
// Rust integration tests in server/tests/api/oidc.rs and the Playwright sign-in
// test), built on the npm package oauth2-mock-server (8.2.x: the last line that
// runs on Node 20.19+). Adapted from the project's shared reference probe.
//
// Negative-test switches (claims that never reach a token):
//   "__forge": true   the id_token's payload is altered after signing (sub -> mallory),
//                     so its signature no longer matches: a forged token.
//
// The stock mock logs in "johndoe" for every authorization-code login. This wrapper
// lets a test choose WHO logs in, per login, and makes the token endpoint strict
// (one-time codes, redirect_uri / client_id / PKCE checks) so a relying party that
// gets the flow wrong fails its tests.
//
// Usage: node mock-oidc.mjs [--host 127.0.0.1] [--port 0] [--port-file F]
//                           [--users users.json] [--jwk private-key.json]
//   Prints "ISSUER=http://127.0.0.1:PORT" on stdout once listening (and writes the
//   issuer URL to --port-file if given). The issuer is exactly that URL, so a client
//   configured with it passes openidconnect's discovery issuer check.
//
// Choosing the user (first match wins), per /authorize call:
//   1. ?login_hint=ALIAS on the authorize URL     -> users registered under ALIAS
//   2. POST /__mock/next-login  {claims}          -> FIFO queue, one entry per login
//   3. PUT  /__mock/default-user {claims}|null    -> fallback (null: error=login_required)
// A queued/registered entry {"error":"access_denied"} makes /authorize redirect back with
// that error instead of a code (to test the RP's error path).
// Claims: {"sub":"alice","email":"alice@example.com","name":"Alice","groups":["ecr-admins"], ...}
// Every claim goes into the id_token (extra ones too; exp/iat/aud may be overridden for
// negative tests), into /userinfo (minus JWT-only claims), and sub+groups into the
// access token.
// Other admin endpoints: POST /__mock/users {alias: claims, ...}; GET /__mock/logins;
//   POST /__mock/reset.
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'port-file': { type: 'string' },
    users: { type: 'string' },
    jwk: { type: 'string' },
  },
});

const DEFAULT_USER = {
  sub: 'johndoe', name: 'John Doe', email: 'johndoe@example.com', groups: [],
};
const JWT_ONLY = new Set(['iss', 'aud', 'exp', 'iat', 'nbf', 'nonce', 'azp', 'auth_time', 'at_hash']);

const db = {
  users: opt.users ? JSON.parse(readFileSync(opt.users, 'utf8')) : {},
  queue: [],
  defaultUser: DEFAULT_USER,
  codes: new Map(),   // code -> {user, clientId, redirectUri, pkce, scope, used}
  refresh: new Map(), // refresh_token -> {user, clientId, scope}
  access: new Map(),  // access_token -> user
  logins: [],
};

const issuer = new OAuth2Issuer();
if (opt.jwk) await issuer.keys.add(JSON.parse(readFileSync(opt.jwk, 'utf8')));
else await issuer.keys.generate('RS256');
const service = new OAuth2Service(issuer);

const withDefaults = (u) =>
  (u.email !== undefined && u.email_verified === undefined ? { ...u, email_verified: true } : u);

function clientIdOf(req) {
  const h = req.headers.authorization ?? '';
  if (/^basic /i.test(h)) {
    const [id] = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8').split(':');
    return decodeURIComponent(id.replace(/\+/g, ' '));
  }
  return req.body?.client_id;
}

// 1) /authorize: decide who logs in, bind that user to the issued code.
service.on('beforeAuthorizeRedirect', ({ url }, req) => {
  const code = url.searchParams.get('code');
  if (!code) return; // unsupported response_type: the mock already set an error
  const q = req.query;
  let user;
  if (typeof q.login_hint === 'string' && q.login_hint !== '') {
    user = db.users[q.login_hint] ?? { error: 'access_denied', error_description: `unknown login_hint ${q.login_hint}` };
  } else {
    user = db.queue.length > 0 ? db.queue.shift() : db.defaultUser;
  }
  if (!user || user.error) {
    url.searchParams.delete('code');
    url.searchParams.set('error', user?.error ?? 'login_required');
    if (user?.error_description) url.searchParams.set('error_description', user.error_description);
    return;
  }
  user = withDefaults(user);
  db.codes.set(code, {
    user, clientId: q.client_id, redirectUri: q.redirect_uri,
    pkce: typeof q.code_challenge === 'string', scope: q.scope, used: false,
  });
  db.logins.push({ code, sub: user.sub, client_id: q.client_id, redirect_uri: q.redirect_uri });
});

function grantForTokenRequest(b) {
  if (b.grant_type === 'authorization_code') return db.codes.get(b.code);
  if (b.grant_type === 'refresh_token') return db.refresh.get(b.refresh_token);
  return undefined;
}

// 2) token signing: put the chosen user's claims into the tokens.
service.on('beforeTokenSigning', (token, req) => {
  const grant = grantForTokenRequest(req.body ?? {});
  if (!grant) return;
  const { user } = grant;
  if ('scope' in token.payload) { // access token
    token.payload.sub = user.sub;
    if (grant.scope !== undefined) token.payload.scope = grant.scope;
    if (user.groups !== undefined) token.payload.groups = user.groups;
  } else { // id_token (the mock has already set iss/aud/nonce/exp)
    Object.assign(token.payload, user);
    delete token.payload.__forge;
  }
});

// 3) token response: enforce what a real provider enforces; remember tokens.
service.on('beforeResponse', (resp, req) => {
  if (resp.statusCode !== 200) return;
  const b = req.body ?? {};
  const fail = (error, d) => { resp.statusCode = 400; resp.body = { error, error_description: d }; };
  let grant;
  if (b.grant_type === 'authorization_code') {
    grant = db.codes.get(b.code);
    if (!grant) return fail('invalid_grant', 'unknown authorization code');
    if (grant.used) return fail('invalid_grant', 'authorization code already used');
    grant.used = true;
    if (b.redirect_uri !== grant.redirectUri) return fail('invalid_grant', 'redirect_uri mismatch');
    if (clientIdOf(req) !== grant.clientId) return fail('invalid_client', 'client_id mismatch');
    if (grant.pkce && !b.code_verifier) return fail('invalid_grant', 'code_verifier required');
  } else if (b.grant_type === 'refresh_token') {
    grant = db.refresh.get(b.refresh_token);
    if (!grant) return fail('invalid_grant', 'unknown refresh token');
    db.refresh.delete(b.refresh_token); // rotate
  } else {
    return; // client_credentials / password: leave the mock's behaviour
  }
  if (grant.user.__forge && typeof resp.body.id_token === 'string') {
    const [h, p, sig] = resp.body.id_token.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    claims.sub = 'mallory';
    claims.groups = ['ecr-admins'];
    resp.body.id_token = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), sig].join('.');
  }
  if (grant.scope !== undefined) resp.body.scope = grant.scope;
  db.refresh.set(resp.body.refresh_token, { user: grant.user, clientId: grant.clientId, scope: grant.scope });
  db.access.set(resp.body.access_token, grant.user);
});

// 4) /userinfo: answer for the user the access token was issued to.
service.on('beforeUserinfo', (resp, req) => {
  const tok = (req.headers.authorization ?? '').replace(/^Bearer\s+/i, '');
  const user = db.access.get(tok);
  if (!user) { resp.statusCode = 401; resp.body = { error: 'invalid_token' }; return; }
  resp.body = Object.fromEntries(Object.entries(user).filter(([k]) => !JWT_ONLY.has(k)));
});

async function readJson(req) {
  let s = '';
  for await (const chunk of req) s += chunk;
  return s === '' ? undefined : JSON.parse(s);
}

async function admin(req, res) {
  const send = (code, body) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const path = req.url.split('?')[0];
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /__mock/next-login': {
      const u = await readJson(req);
      if (!u || (typeof u.sub !== 'string' && !u.error)) return send(400, { error: 'need sub or error' });
      db.queue.push(u);
      return send(200, { queued: db.queue.length });
    }
    case 'PUT /__mock/default-user':
      db.defaultUser = (await readJson(req)) ?? null;
      return send(200, { default_user: db.defaultUser });
    case 'POST /__mock/users':
      Object.assign(db.users, await readJson(req));
      return send(200, { users: Object.keys(db.users) });
    case 'GET /__mock/logins':
      return send(200, db.logins);
    case 'POST /__mock/reset':
      db.queue.length = 0; db.codes.clear(); db.refresh.clear(); db.access.clear();
      db.logins.length = 0; db.defaultUser = DEFAULT_USER;
      return send(200, {});
    default:
      return send(404, { error: `no admin route ${route}` });
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__mock/')) {
    admin(req, res).catch((e) => { res.writeHead(400); res.end(String(e)); });
  } else {
    service.requestHandler(req, res);
  }
});

server.listen(Number(opt.port), opt.host, () => {
  const { port } = server.address();
  const host = opt.host.includes(':') ? `[${opt.host}]` : opt.host;
  issuer.url = `http://${host}:${port}`;
  if (opt['port-file']) writeFileSync(opt['port-file'], `${issuer.url}\n`);
  process.stdout.write(`ISSUER=${issuer.url}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { server.close(); server.closeAllConnections?.(); process.exit(0); });
}
