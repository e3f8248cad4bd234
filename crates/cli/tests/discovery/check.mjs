// Validates a discovery document with oauth4webapi, an independent client library: discovery
// request, processing (issuer match, JSON object) and the members a client relies on.
// Usage: node check.mjs ISSUER [oidc] (RFC 8414 by default; `oidc` reads
// /.well-known/openid-configuration and checks the members a relying party signing users in
// needs).
import * as oauth from 'oauth4webapi';

const issuer = new URL(process.argv[2]);
const algorithm = process.argv[3] === 'oidc' ? 'oidc' : 'oauth2';
const options = { [oauth.allowInsecureRequests]: true }; // the test server is loopback HTTP
const response = await oauth.discoveryRequest(issuer, { algorithm, ...options });
const as = await oauth.processDiscoveryResponse(issuer, response);
const members = ['token_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint'];
if (algorithm === 'oidc') {
  members.push('authorization_endpoint', 'userinfo_endpoint', 'end_session_endpoint');
  if (!as.code_challenge_methods_supported?.includes('S256')) throw new Error('no S256');
  if (as.authorization_response_iss_parameter_supported !== true) throw new Error('no iss');
}
for (const member of members) {
  if (typeof as[member] !== 'string') throw new Error(`${member} missing`);
}
console.log(JSON.stringify({ ok: true, issuer: as.issuer, algorithm }));
