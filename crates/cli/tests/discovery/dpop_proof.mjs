// Makes DPoP proofs (RFC 9449) with oauth4webapi, an independent client library, for the
// Rust tests to present to Portcullis (crates/server/tests/it/user_tokens.rs).
// Usage (NOW: the server's current time in Unix seconds; the proof's iat follows it through
// oauth4webapi's clockSkew, so tests may run a manual clock):
//   node dpop_proof.mjs NOW new URL METHOD            -> {"proof", "jkt", "key"}, fresh ES256 key
//   node dpop_proof.mjs NOW with KEY URL METHOD [AT]  -> {"proof", "jkt"} with KEY (a private JWK
//                                                        from `new`), `ath` of AT when given
import * as oauth from 'oauth4webapi';

const [now, mode, ...args] = process.argv.slice(2);
const skew = Number(now) - Math.floor(Date.now() / 1000);
const alg = { name: 'ECDSA', namedCurve: 'P-256' };
let keyPair;
let rest;
if (mode === 'new') {
  keyPair = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  rest = args;
} else if (mode === 'with') {
  const jwk = JSON.parse(args[0]);
  const { d, ...pub } = jwk;
  keyPair = {
    privateKey: await crypto.subtle.importKey('jwk', jwk, alg, false, ['sign']),
    publicKey: await crypto.subtle.importKey('jwk', { ...pub, key_ops: ['verify'] }, alg, true, ['verify']),
  };
  rest = args.slice(1);
} else {
  throw new Error('usage: NOW new URL METHOD | NOW with KEY URL METHOD [ACCESS_TOKEN]');
}
const [url, method, accessToken] = rest;
const dpop = oauth.DPoP({ [oauth.clockSkew]: skew }, keyPair);
const headers = new Headers();
await dpop.addProof(new URL(url), headers, method, accessToken);
const out = { proof: headers.get('dpop'), jkt: await dpop.calculateThumbprint() };
if (mode === 'new') out.key = await crypto.subtle.exportKey('jwk', keyPair.privateKey);
console.log(JSON.stringify(out));
