// A real OpenID provider for the tests: the certified `oidc-provider` package (package.json),
// on 127.0.0.1 with an OS-chosen port. It prints `listening <port>` once it serves.
//
// Its settings are a JSON file named by $OIDC_CONFIG_FILE:
//   {"keys": [private JWKs: the signing keys, the first of each type signs],
//    "client": {"client_id", "client_secret", "redirect_uris": [the gateway's callback]}}
// The client is confidential (client_secret_basic), for the authorization code flow with PKCE
// and for client credentials.
//
// SIGHUP reads the file again and serves a new provider with its keys and client on the same
// port and issuer (key rotation, a callback registered once the gateway's port is known), then
// prints `reloaded <kid> ...`.
//
// Accounts: the development login form accepts any login (no password check); alice and bob have
// groups. Resource indicators make JWT access tokens for client credentials:
//   urn:tuning:api (RS256), urn:tuning:api:es256 (ES256), urn:tuning:api:ps256 (PS256) for the
//   audience urn:tuning:api, and urn:other:api (RS256) for the audience urn:other:api.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const API = 'urn:tuning:api';
const RESOURCES = {
  'urn:tuning:api': { audience: API, alg: 'RS256' },
  'urn:tuning:api:es256': { audience: API, alg: 'ES256' },
  'urn:tuning:api:ps256': { audience: API, alg: 'PS256' },
  'urn:other:api': { audience: 'urn:other:api', alg: 'RS256' },
};
const GROUPS = { alice: ['ml-team', 'admins'], bob: ['ml-team'] };

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const configFile = required('OIDC_CONFIG_FILE');

function configuration() {
  const { keys, client } = JSON.parse(readFileSync(configFile, 'utf8'));
  return {
    clients: [{ ...client, grant_types: ['authorization_code', 'client_credentials'], response_types: ['code'] }],
    jwks: { keys },
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${sub}@example.test`, email_verified: true, groups: GROUPS[sub] ?? [] };
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups', 'api'],
    // The ID token carries the scopes' claims (email, groups) even in the code flow, as the
    // suite reads them from it.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: { ClientCredentials: 600, IdToken: 3600 },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async getResourceServerInfo(ctx, indicator) {
          const resource = RESOURCES[indicator];
          if (!resource) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: resource.audience,
            accessTokenTTL: 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: resource.alg } },
          };
        },
      },
    },
    async extraTokenClaims(ctx, token) {
      return token.kind === 'ClientCredentials' ? { groups: ['machines'] } : undefined;
    },
  };
}

let handle;
const server = http.createServer((req, res) => handle(req, res));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const start = () => {
    const config = configuration();
    handle = new Provider(issuer, config).callback();
    return config.jwks.keys.map((key) => key.kid).join(' ');
  };
  start();
  process.on('SIGHUP', () => console.log(`reloaded ${start()}`));
  console.log(`listening ${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
