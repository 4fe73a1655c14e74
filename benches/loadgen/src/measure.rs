//! Pure measurement math: /proc parsing, CPU cost per participant-second, Prometheus text.

/// (utime, stime) in clock ticks from the text of `/proc/<pid>/stat` (proc(5): fields 14
/// and 15). The comm field may contain spaces and parentheses, so count after the last ')'.
pub fn cpu_times_from_stat(stat: &str) -> Option<(u64, u64)> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    // After ')' the fields start at field 3 (state), so utime (14) is index 11.
    let mut f = after.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime, stime))
}

/// utime + stime in clock ticks from the text of `/proc/<pid>/stat`.
pub fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    cpu_times_from_stat(stat).map(|(u, s)| u + s)
}

/// Resident set size in KiB from the text of `/proc/<pid>/status`.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU cost in microseconds of CPU per participant-second of real time.
pub fn cpu_us_per_participant_second(cpu_seconds: f64, participants: usize, wall: f64) -> f64 {
    let denom = participants as f64 * wall;
    if denom <= 0.0 {
        return 0.0;
    }
    cpu_seconds * 1e6 / denom
}

/// How many participants one fully busy core carries at this cost.
pub fn participants_per_core(us_per_participant_second: f64) -> f64 {
    if us_per_participant_second <= 0.0 {
        return f64::INFINITY;
    }
    1e6 / us_per_participant_second
}

/// Value of an unlabelled sample `name` in Prometheus text exposition format.
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(char::is_whitespace)?;
        (n == name).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// Sum of every sample of `name`, whatever its labels (`name{kind="a"} 1`), or None if
/// there is none.
pub fn prometheus_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.strip_prefix('{') {
            Some(labelled) => labelled.split_once('}').map(|(_, v)| v),
            None => rest.starts_with(char::is_whitespace).then_some(rest),
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Loss in percent from packets expected and received in a window (never negative:
/// duplicates can make received exceed expected).
pub fn loss_percent(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    expected.saturating_sub(received) as f64 * 100.0 / expected as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_plus_stime_despite_spaces_in_comm() {
        let stat = "4242 (amt (srv) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 200000 3000";
        assert_eq!(cpu_ticks_from_stat(stat), Some(1234 + 567));
        assert_eq!(cpu_times_from_stat(stat), Some((1234, 567)));
    }

    #[test]
    fn truncated_stat_gives_none() {
        assert_eq!(cpu_ticks_from_stat("1 (x) S 1 2 3"), None);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tamtsleitung\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(vm_rss_kib(status), Some(12345));
    }

    #[test]
    fn cpu_cost_per_participant_second_and_per_core() {
        // 2 CPU seconds over 20 s for 100 participants: 1000 µs per participant-second.
        let us = cpu_us_per_participant_second(2.0, 100, 20.0);
        assert!((us - 1000.0).abs() < 1e-9);
        assert!((participants_per_core(us) - 1000.0).abs() < 1e-9);
        assert_eq!(cpu_us_per_participant_second(1.0, 0, 20.0), 0.0);
    }

    #[test]
    fn finds_unlabelled_prometheus_sample_not_its_prefix_twin() {
        let text = "# HELP amtsleitung_media_ticks_total x\n\
                    amtsleitung_media_late_ticks_total 3\n\
                    amtsleitung_media_ticks_total 1500\n";
        assert_eq!(
            prometheus_value(text, "amtsleitung_media_ticks_total"),
            Some(1500.0)
        );
        assert_eq!(
            prometheus_value(text, "amtsleitung_media_late_ticks_total"),
            Some(3.0)
        );
        assert_eq!(prometheus_value(text, "missing"), None);
    }

    #[test]
    fn sums_a_labelled_metric_over_its_labels_only() {
        let text = "# TYPE amtsleitung_webrtc_sessions gauge\n\
                    amtsleitung_webrtc_sessions{kind=\"whip\"} 2\n\
                    amtsleitung_webrtc_sessions{kind=\"whep\"} 3\n\
                    amtsleitung_webrtc_sessions_started_total 40\n";
        assert_eq!(
            prometheus_sum(text, "amtsleitung_webrtc_sessions"),
            Some(5.0)
        );
        assert_eq!(
            prometheus_sum(text, "amtsleitung_webrtc_sessions_started_total"),
            Some(40.0)
        );
        assert_eq!(prometheus_sum(text, "amtsleitung_webrtc"), None);
    }

    #[test]
    fn loss_percent_counts_missing_and_clamps_duplicates() {
        assert!((loss_percent(1000, 990) - 1.0).abs() < 1e-9);
        assert_eq!(loss_percent(100, 105), 0.0);
        assert_eq!(loss_percent(0, 0), 0.0);
    }
}
