//! The audit log's hash chain: what makes an edited, deleted or reordered event detectable.
//!
//! One chain per installation. Every stored event gets the next position (1, 2, ...) and the
//! hash `SHA-256("portcullis-audit-chain-v1" || previous hash || position || event)`, the event
//! written in a fixed, length-prefixed encoding of every field ([`link`]). The first event's
//! previous hash is [`GENESIS`]. The audit writer (a queue, one batch per transaction) computes
//! the links, so chaining never serialises request handling; across nodes the writers take
//! turns on the chain head row.
//!
//! A chain that an attacker rewrote from some position on is consistent with itself, so the
//! service also records **checkpoints** (a position and its hash, signed by the installation's
//! signing key) from which [`Verifier`] checks the recomputed chain. Pruning deletes events
//! only up to a checkpoint, whose hash then seeds verification of what remains.
//!
//! Pure computation: this module never reads storage or the clock, and never changes the
//! encoding of a field (stored hashes would no longer verify): add a new `v2` domain instead.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;

/// The previous hash of position 1.
pub const GENESIS: [u8; 32] = [0; 32];

const DOMAIN: &[u8] = b"portcullis-audit-chain-v1";

/// A chain hash.
pub type Hash = [u8; 32];

fn field(h: &mut Sha256, value: Option<&str>) {
    match value {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    }
}

/// The hash of `event` stored at `position` after `previous`.
pub fn link(previous: &Hash, position: i64, event: &AuditEvent) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(previous);
    h.update(position.to_be_bytes());
    field(&mut h, Some(&event.id));
    h.update(event.occurred_at.as_millis().to_be_bytes());
    field(&mut h, Some(event.tenant.as_str()));
    field(&mut h, Some(event.actor.as_str()));
    field(&mut h, event.credential_id.as_deref());
    field(&mut h, event.client_ip.as_deref());
    field(&mut h, event.user_agent.as_deref());
    field(&mut h, Some(event.action.as_str()));
    field(&mut h, Some(event.outcome.as_str()));
    field(&mut h, event.reason.as_ref().map(|r| r.as_str()));
    field(&mut h, event.request_id.as_deref());
    field(&mut h, event.target.as_deref());
    h.finalize().into()
}

/// Lowercase hex of a hash, for output and signed checkpoint claims.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from its hex form.
pub fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What a checkpoint vouches for: the chain's hash at a position. The signed form carries
/// these as JWT claims (`pos`, `hash` in hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointClaims {
    pub pos: i64,
    pub hash: String,
    /// Seconds since the epoch.
    pub iat: i64,
}

/// How the chain is broken at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Break {
    /// The event stored there does not hash to its stored hash: edited, or moved there from
    /// another position (reordered).
    Altered,
    /// No event is stored at the position though later ones are: deleted.
    Missing,
    /// The events up to a checkpoint hash to something other than the checkpoint says: the
    /// chain was rewritten (events and hashes) somewhere after the previous checkpoint.
    CheckpointMismatch,
    /// A checkpoint's signature does not verify.
    CheckpointForged,
}

impl Break {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Altered => "altered",
            Self::Missing => "missing",
            Self::CheckpointMismatch => "checkpoint_mismatch",
            Self::CheckpointForged => "checkpoint_forged",
        }
    }
}

/// The first broken position and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broken {
    pub position: i64,
    pub kind: Break,
    /// For a checkpoint mismatch: the first position that may have been rewritten (one after
    /// the previous good checkpoint).
    pub from: Option<i64>,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.from) {
            (Break::CheckpointMismatch, Some(from)) => write!(
                f,
                "the chain was rewritten between positions {from} and {} (checkpoint mismatch)",
                self.position
            ),
            (k, _) => write!(f, "position {}: {}", self.position, k.as_str()),
        }
    }
}

/// Checks chained events fed in position order against their stored hashes and the
/// checkpoints.
#[derive(Debug)]
pub struct Verifier {
    prev: Hash,
    /// The next position expected.
    next: i64,
    /// Position -> hash of the checkpoints not yet reached.
    checkpoints: BTreeMap<i64, Hash>,
    /// The last position vouched for by a checkpoint (or the start).
    last_good: i64,
    checked: u64,
    broken: Option<Broken>,
}

impl Verifier {
    /// A verifier for a chain whose first remaining event follows `start` (position 0 with
    /// [`GENESIS`] for an unpruned chain; the checkpoint before the pruned range otherwise).
    pub fn new(
        start_pos: i64,
        start_hash: Hash,
        checkpoints: impl IntoIterator<Item = (i64, Hash)>,
    ) -> Self {
        Self {
            prev: start_hash,
            next: start_pos + 1,
            checkpoints: checkpoints
                .into_iter()
                .filter(|(p, _)| *p > start_pos)
                .collect(),
            last_good: start_pos,
            checked: 0,
            broken: None,
        }
    }

    /// Feeds the event stored at `position` with its stored hash. Returns `false` once the
    /// chain is broken (later events are not looked at).
    pub fn feed(&mut self, position: i64, stored: &[u8], event: &AuditEvent) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if position != self.next {
            self.broken = Some(Broken {
                position: self.next,
                kind: if position > self.next {
                    Break::Missing
                } else {
                    Break::Altered
                },
                from: None,
            });
            return false;
        }
        let h = link(&self.prev, position, event);
        if h.as_slice() != stored {
            self.broken = Some(Broken {
                position,
                kind: Break::Altered,
                from: None,
            });
            return false;
        }
        if let Some(expected) = self.checkpoints.remove(&position) {
            if expected != h {
                self.broken = Some(Broken {
                    position,
                    kind: Break::CheckpointMismatch,
                    from: Some(self.last_good + 1),
                });
                return false;
            }
            self.last_good = position;
        }
        self.prev = h;
        self.next += 1;
        self.checked += 1;
        true
    }

    /// The result once every event was fed, with the chain head's position: events missing at
    /// the end (the newest deleted) and checkpoints past the last event are breaks too.
    pub fn finish(mut self, head_pos: i64) -> Result<u64, Broken> {
        if let Some(b) = self.broken.take() {
            return Err(b);
        }
        if let Some((&pos, _)) = self.checkpoints.iter().next() {
            // A checkpoint vouches for a position no stored event reaches.
            if pos >= self.next {
                return Err(Broken {
                    position: self.next,
                    kind: Break::Missing,
                    from: None,
                });
            }
        }
        if head_pos >= self.next {
            return Err(Broken {
                position: self.next,
                kind: Break::Missing,
                from: None,
            });
        }
        Ok(self.checked)
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor, Outcome};
    use crate::tenant::TenantId;
    use crate::time::Timestamp;

    fn event(i: i64) -> AuditEvent {
        AuditEvent {
            id: format!("ev{i}"),
            occurred_at: Timestamp::from_secs(1_700_000_000 + i),
            tenant: TenantId::system(),
            actor: Actor::system(),
            credential_id: None,
            client_ip: Some("192.0.2.1".into()),
            user_agent: None,
            action: Action::TenantCreate,
            outcome: Outcome::Success,
            reason: None,
            request_id: None,
            target: Some(format!("t{i}")),
        }
    }

    /// Positions 1..=n with their hashes.
    fn chain(n: i64) -> Vec<(i64, Hash, AuditEvent)> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|i| {
                let e = event(i);
                prev = link(&prev, i, &e);
                (i, prev, e)
            })
            .collect()
    }

    fn verify(
        rows: &[(i64, Hash, AuditEvent)],
        cps: &[(i64, Hash)],
        head: i64,
    ) -> Result<u64, Broken> {
        let mut v = Verifier::new(0, GENESIS, cps.iter().copied());
        for (p, h, e) in rows {
            if !v.feed(*p, h, e) {
                break;
            }
        }
        v.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies_and_every_field_is_bound() {
        let rows = chain(10);
        assert_eq!(verify(&rows, &[(5, rows[4].1)], 10), Ok(10));
        // Each field changes the hash.
        let base = event(1);
        let mut variants = Vec::new();
        for f in 0..6 {
            let mut e = base.clone();
            match f {
                0 => e.id.push('x'),
                1 => e.client_ip = None,
                2 => e.user_agent = Some(String::new()),
                3 => e.outcome = Outcome::Failure,
                4 => e.target = Some("t2".into()),
                _ => e.occurred_at = Timestamp::from_secs(1),
            }
            variants.push(link(&GENESIS, 1, &e));
        }
        let h = link(&GENESIS, 1, &base);
        assert!(variants.iter().all(|v| *v != h));
        assert_ne!(link(&GENESIS, 2, &base), h, "the position is bound");
    }

    #[test]
    fn an_edit_a_deletion_and_a_reordering_name_the_first_broken_position() {
        let rows = chain(10);
        let mut edited = rows.clone();
        edited[3].2.outcome = Outcome::Denied;
        assert_eq!(
            verify(&edited, &[], 10).map_err(|b| (b.position, b.kind)),
            Err((4, Break::Altered))
        );
        let mut deleted = rows.clone();
        deleted.remove(6);
        assert_eq!(
            verify(&deleted, &[], 10).map_err(|b| (b.position, b.kind)),
            Err((7, Break::Missing))
        );
        // The newest event deleted: the head still says 10.
        assert_eq!(
            verify(&rows[..9], &[], 10).map_err(|b| (b.position, b.kind)),
            Err((10, Break::Missing))
        );
        // Two events swapped (their contents and hashes moved, positions kept in order).
        let mut swapped = rows.clone();
        let (a, b) = (swapped[2].clone(), swapped[3].clone());
        swapped[2] = (3, b.1, b.2);
        swapped[3] = (4, a.1, a.2);
        assert_eq!(
            verify(&swapped, &[], 10).map_err(|b| (b.position, b.kind)),
            Err((3, Break::Altered))
        );
    }

    #[test]
    fn a_rewritten_tail_is_caught_by_the_next_checkpoint() {
        let rows = chain(10);
        let cps = [(4, rows[3].1), (8, rows[7].1)];
        // Rewrite event 6 and recompute every hash after it: self-consistent.
        let mut forged = rows.clone();
        forged[5].2.target = Some("evil".into());
        let mut prev = forged[4].1;
        for r in forged.iter_mut().skip(5) {
            r.1 = link(&prev, r.0, &r.2);
            prev = r.1;
        }
        assert_eq!(verify(&forged, &[], 10), Ok(10));
        let b = verify(&forged, &cps, 10).expect_err("caught");
        assert_eq!(
            (b.position, b.kind, b.from),
            (8, Break::CheckpointMismatch, Some(5))
        );
        assert!(b.to_string().contains("between positions 5 and 8"), "{b}");
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_checkpoint() {
        let rows = chain(10);
        let mut v = Verifier::new(4, rows[3].1, [(4, rows[3].1), (8, rows[7].1)]);
        for (p, h, e) in &rows[4..] {
            assert!(v.feed(*p, h, e));
        }
        assert_eq!(v.finish(10), Ok(6));
        // Starting from a wrong seed fails at the first remaining event.
        let mut v = Verifier::new(4, GENESIS, []);
        assert!(!v.feed(5, &rows[4].1, &rows[4].2));
        assert_eq!(v.finish(10).map_err(|b| b.position), Err(5));
    }

    #[test]
    fn hex_round_trips() {
        let h = link(&GENESIS, 1, &event(1));
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }
}
