// Test fixture for kwi's OIDC login tests: a real, local OpenID Connect provider
// (npm `oidc-provider`, pinned in package.json; `npm ci` here first) that the Rust integration
// tests start as a child process.
//
// Flow without a browser (cookie store on, redirects off; Location may be relative):
//   GET /auth?... -> 303 /interaction/<uid>; GET it (login form);
//   POST /interaction/<uid> prompt=login&login=<id>&password=<any> -> 303 /auth/<uid>;
//   GET /auth/<uid> -> 303 /interaction/<uid2> (consent form);
//   POST /interaction/<uid2> prompt=consent -> 303 /auth/<uid2>;
//   GET /auth/<uid2> -> 303 REDIRECT_URI?code=..&state=..&iss=..
//
//   PORT=0 CLIENT_ID=kwi CLIENT_SECRET=s3cret \
//   REDIRECT_URI=http://127.0.0.1:8080/v1/auth/oidc/callback node tests/oidc/provider.mjs
//
// Prints exactly one line `READY http://127.0.0.1:<port>` to stdout once it is listening
// (the issuer is that URL); everything else (oidc-provider notices/warnings, errors) goes to stderr.
// Login/consent use oidc-provider's built-in dev interaction pages, which are plain HTML
// forms: any non-empty login name with any password is accepted. The account id becomes `sub`;
// `email` is the id if it contains '@' (else `<id>@example.test`); `email_verified` is
// false when the id starts with "unverified". All state is in memory. Never use in production.
import http from 'node:http';
import { Provider } from 'oidc-provider';

// oidc-provider prints "NOTICE" lines with console.info (stdout); keep stdout for READY only.
console.info = console.log = (...args) => console.error(...args);

const { CLIENT_ID, CLIENT_SECRET, REDIRECT_URI } = process.env;
if (!CLIENT_ID || !CLIENT_SECRET || !REDIRECT_URI) {
  console.error('provider.mjs: CLIENT_ID, CLIENT_SECRET and REDIRECT_URI must be set');
  process.exit(2);
}

// Listen first (PORT=0 picks a free port), then build the provider with the real issuer.
let handler = (_req, res) => { res.statusCode = 503; res.end('starting'); };
const server = http.createServer((req, res) => handler(req, res));
server.on('error', (err) => { console.error('provider.mjs: server error:', err); process.exit(1); });

server.listen(Number(process.env.PORT || 0), '127.0.0.1', async () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI], // http + loopback is accepted for web clients using code flow
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }],
    pkce: { methods: ['S256'], required: () => true }, // every auth request needs code_challenge (S256)
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false, // put scope claims (email, email_verified) into the id_token too
    cookies: { keys: ['kwi-oidc-fixture-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    // No `jwks`: the built-in development RS256 key signs id_tokens (published at /jwks).
    async findAccount(_ctx, id) {
      const email = id.includes('@') ? id : `${id}@example.test`;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email, email_verified: !id.startsWith('unverified'), name: id };
        },
      };
    },
  });

  provider.on('server_error', (_ctx, err) => console.error('provider.mjs: server_error:', err));
  for (const ev of ['authorization.error', 'grant.error', 'userinfo.error', 'end_session.error']) {
    provider.on(ev, (_ctx, err) => console.error(`provider.mjs: ${ev}:`, err.message, err.error_description || ''));
  }

  // Static clients are validated lazily; load ours now so bad env fails before READY.
  try {
    await provider.Client.find(CLIENT_ID);
  } catch (err) {
    console.error('provider.mjs: invalid client configuration:', err.message, err.error_description || '');
    process.exit(1);
  }

  handler = provider.callback();
  process.stdout.write(`READY ${issuer}\n`);
});

// Exit cleanly when the test tears us down.
function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// Opt-in: EXIT_ON_STDIN_EOF=1 with a piped stdin makes us exit when the test process dies
// (its end of the pipe closes), so a panicking test leaves no orphan provider behind.
if (process.env.EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown).on('error', shutdown).resume();
}
