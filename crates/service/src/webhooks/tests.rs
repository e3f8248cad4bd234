use super::*;

#[test]
fn backoff_doubles_is_capped_and_jittered_within_its_upper_half() {
    let s = WebhookSettings {
        retry_base_ms: 1_000,
        retry_max_ms: 10_000,
        ..WebhookSettings::default()
    };
    assert_eq!(s.backoff(1, 1.0), Duration::from_millis(1_000));
    assert_eq!(s.backoff(1, 0.0), Duration::from_millis(500));
    assert_eq!(s.backoff(2, 1.0), Duration::from_millis(2_000));
    assert_eq!(s.backoff(3, 1.0), Duration::from_millis(4_000));
    assert_eq!(s.backoff(10, 1.0), Duration::from_millis(10_000));
    assert_eq!(s.backoff(u32::MAX, 0.0), Duration::from_millis(5_000));
    let mid = s.backoff(2, 0.5);
    assert!(mid > Duration::from_millis(1_000) && mid < Duration::from_millis(2_000));
}

#[test]
fn settings_refuse_values_that_cannot_work() {
    assert!(WebhookSettings::default().problems().is_empty());
    for bad in [
        WebhookSettings {
            max_attempts: 0,
            ..WebhookSettings::default()
        },
        WebhookSettings {
            timeout_ms: 0,
            ..WebhookSettings::default()
        },
        WebhookSettings {
            retry_max_ms: 1,
            ..WebhookSettings::default()
        },
        WebhookSettings {
            lease_secs: 5,
            ..WebhookSettings::default()
        },
        WebhookSettings {
            batch: 0,
            ..WebhookSettings::default()
        },
    ] {
        assert!(!bad.problems().is_empty(), "{bad:?}");
    }
}

#[test]
fn metrics_count_per_rule_and_outcome() {
    let m = WebhookMetrics::default();
    m.add("failed_auth_spike", Outcome::Retried);
    m.add("failed_auth_spike", Outcome::Retried);
    m.add("new_network", Outcome::DeadLettered);
    m.add("no_such_rule", Outcome::Delivered);
    assert_eq!(m.count("failed_auth_spike", Outcome::Retried), 2);
    assert_eq!(m.count("new_network", Outcome::DeadLettered), 1);
    assert_eq!(m.count("failed_auth_spike", Outcome::Delivered), 0);
    let mut t = Text::new();
    m.write(&mut t);
    let text = t.finish();
    assert!(text.contains(
        "portcullis_webhook_deliveries_total{rule=\"failed_auth_spike\",outcome=\"retried\"} 2"
    ));
}
