// Validates an RFC 8414 authorization server metadata document with oauth4webapi, an
// independent client library: discovery request, processing (issuer match, JSON object) and
// the members a client-credentials client relies on. Usage: node check.mjs ISSUER
import * as oauth from 'oauth4webapi';

const issuer = new URL(process.argv[2]);
const options = { [oauth.allowInsecureRequests]: true }; // the test server is loopback HTTP
const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...options });
const as = await oauth.processDiscoveryResponse(issuer, response);
for (const member of ['token_endpoint', 'jwks_uri', 'introspection_endpoint', 'revocation_endpoint']) {
  if (typeof as[member] !== 'string') throw new Error(`${member} missing`);
}
console.log(JSON.stringify({ ok: true, issuer: as.issuer }));
