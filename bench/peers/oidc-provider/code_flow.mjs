// node-oidc-provider as the benchmark peer for browser sign-in flows: the authorization code flow
// with PKCE for a public native client, and refresh-token grants with rotation on every use.
// Usage: node code_flow.mjs PORT CLIENT_ID REDIRECT_URI
//
// Configured to do what Portcullis does for its first-party native client (differences are listed
// in bench/README.md):
// - in-memory adapter (the default), one public client (`token_endpoint_auth_method` `none`,
//   PKCE S256 required, which node-oidc-provider requires for public clients anyway);
// - ID tokens and RFC 9068 JWT access tokens signed with ES256 (Portcullis's default algorithm),
//   the access token for one resource server so that it is a JWT and not an opaque handle;
// - a refresh token with `offline_access`, rotated on every use (`rotateRefreshToken` always);
// - the interaction policy is the default without `native_client_prompt` (consent on every request
//   of a native client), since Portcullis skips consent for a first-party client;
// - the interaction (login and consent pages) is replaced by a handler that signs in a fixed
//   account and grants what was asked without a page: the benchmark measures the flow with an
//   existing session, where node-oidc-provider redirects with a code without any interaction,
//   exactly like Portcullis for a first-party client. The handler only runs while the harness
//   sets up the session and the refresh-token families, never in a measured round (a measured
//   authorization request that needed it would be answered with a redirect to /interaction and
//   the load script would count it as a failure).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider, { interactionPolicy } from 'oidc-provider';

const [port, clientId, redirectUri] = process.argv.slice(2);
const resource = 'https://bench-api.example';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'ES256', use: 'sig' };

// node-oidc-provider asks a native client's user for consent on every authorization request
// (check `native_client_prompt`); Portcullis skips consent for a first-party client, so the
// policy here is the default one without that check.
const policy = interactionPolicy.base();
policy.get('consent').checks.remove('native_client_prompt');

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    application_type: 'native',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'none',
    id_token_signed_response_alg: 'ES256',
    scope: 'openid offline_access',
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access'],
  pkce: { required: () => true },
  rotateRefreshToken: () => true,
  interactions: { policy },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'openid',
        audience: 'bench-api',
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

// The interaction: sign in account `user0` and grant the requested scopes, no page.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) {
    return next();
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (process.env.BENCH_DEBUG) console.log(JSON.stringify(details.prompt));
  const accountId = details.session?.accountId ?? 'user0';
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  grant.addResourceScope(resource, details.params.scope);
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
