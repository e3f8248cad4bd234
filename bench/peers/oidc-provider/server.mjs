// node-oidc-provider as a benchmark peer: client credentials grant, JWT (RFC 9068) access tokens
// signed with ES256, in-memory adapter, one client. Usage: node server.mjs PORT CLIENT_ID SECRET [MODE]
// MODE `introspection`: access tokens are opaque (node-oidc-provider refuses to introspect its JWT
// access tokens: "structured tokens cannot be introspected") and RFC 7662 introspection is on, at
// /token/introspection, with the client's own client_secret_basic.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, mode] = process.argv.slice(2);
const introspection = mode === 'introspection';
const resource = 'https://payments-api.example';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    scope: 'payments:read',
  }],
  jwks: { keys: [jwk] },
  scopes: ['payments:read'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: introspection },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'payments:read',
        audience: 'payments-api',
        accessTokenTTL: 600,
        accessTokenFormat: introspection ? 'opaque' : 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
