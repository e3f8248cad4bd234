//! The SQL of [`crate::DpopStore`]: the DPoP proof replay table, expanded for each backend
//! beside `impl_sql_store!`.
//!
//! Single use of a proof is the database's job: the `(jkt, jti)` primary key and `INSERT ... ON
//! CONFLICT DO NOTHING`, so two nodes racing on one proof cannot both win. This module must
//! never decide whether a proof is valid (the JOSE profile and the token service do).

macro_rules! impl_dpop_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::DpopStore for $store {
            async fn record_dpop_jti(
                &self,
                jkt: &str,
                jti: &str,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool> {
                record_once(
                    &self.group,
                    "dpop_proof_jtis",
                    "jkt",
                    jkt,
                    jti,
                    expires_at,
                    now,
                )
                .await
            }

            async fn prune_dpop_jtis(&self, now: Timestamp) -> Result<u64> {
                prune_expired_once(&self.pool, "dpop_proof_jtis", now).await
            }
        }
    };
}

pub(crate) use impl_dpop_store;
