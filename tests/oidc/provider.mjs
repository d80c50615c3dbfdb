// A real OpenID Connect provider with device flow (RFC 8628), for catty's login tests
// (tests/common/oidc.rs starts it). It listens on 127.0.0.1, port 0, and prints its issuer URL
// as the first line of stdout. Its built-in login and consent forms (devInteractions) accept
// any login; the login name becomes the user's `sub` and `<login>@example.com` their email.
//
// Environment:
//   CATTY_TEST_OIDC_DEVICE_TTL  seconds a device code lives (default 600)
//   CATTY_TEST_OIDC_INTERVAL    the `interval` the device authorization answers (default 5)
//
// `GET /test/token-polls` answers how many requests the token endpoint has had, so a test can
// count the polls that reached the provider.

import http from 'node:http';
import Provider from 'oidc-provider';

const ttl = Number(process.env.CATTY_TEST_OIDC_DEVICE_TTL || 600);
const interval = Number(process.env.CATTY_TEST_OIDC_INTERVAL || 5);

let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'catty-cli',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    }],
    features: {
      deviceFlow: { enabled: true },
      devInteractions: { enabled: true },
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    // The email in the ID token itself, where catty's API reads it.
    conformIdTokenClaims: false,
    ttl: { DeviceCode: ttl },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: true };
        },
      };
    },
  });
  let tokenPolls = 0;
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/test/token-polls') {
      ctx.body = { polls: tokenPolls };
      return;
    }
    if (ctx.method === 'POST' && ctx.path === '/token') tokenPolls += 1;
    await next();
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200) {
      ctx.body = { ...ctx.body, interval };
    }
  });
  handler = provider.callback();
  process.stdout.write(`${issuer}\n`);
});
