//! Staffing a queue with Erlang C: how many agents a forecast volume needs to
//! meet a service-level target, and what service the queue gets with a given
//! number of agents.
//!
//! The model is the M/M/N queue with no abandonment: calls arrive at random
//! (Poisson), handle times are exponential, and a caller who finds every agent
//! busy waits. It is the planning standard of contact centres; it tends to
//! overstate the staff needed when many callers hang up while waiting.
//!
//! Everything is computed from the Erlang B recursion
//! `B(0) = 1`, `B(n) = A·B(n−1) / (n + A·B(n−1))`, then
//! `C = N·B / (N − A·(1 − B))`. Unlike the textbook formula with `A^N / N!`,
//! nothing overflows or cancels for thousands of agents.

use serde::Serialize;

/// The probability that all `agents` are busy in an Erlang B (loss) system
/// offered `traffic_erlangs`. Stable for any agent count.
///
/// Traffic of zero or less gives 0 (nothing to block); NaN traffic gives NaN.
pub fn erlang_b(traffic_erlangs: f64, agents: u32) -> f64 {
    if traffic_erlangs.is_nan() {
        return f64::NAN;
    }
    if traffic_erlangs <= 0.0 {
        return 0.0;
    }
    if agents == 0 || traffic_erlangs.is_infinite() {
        return 1.0;
    }
    let mut b = 1.0;
    for n in 1..=agents {
        b = erlang_b_step(traffic_erlangs, n, b);
    }
    b
}

/// One step of the Erlang B recursion: `B(n)` from `B(n − 1)`.
fn erlang_b_step(traffic: f64, n: u32, previous: f64) -> f64 {
    let ab = traffic * previous;
    ab / (f64::from(n) + ab)
}

/// Erlang C from Erlang B for the same traffic and agent count.
fn c_from_b(traffic: f64, agents: u32, b: f64) -> f64 {
    let n = f64::from(agents);
    n * b / (n - traffic * (1.0 - b))
}

/// The probability that a call has to wait (Erlang C), with `traffic_erlangs`
/// offered to `agents`.
///
/// With no traffic nobody waits (0). With `agents ≤ traffic` the queue is
/// unstable and grows without bound, so every call waits (1). NaN traffic
/// gives NaN.
pub fn erlang_c(traffic_erlangs: f64, agents: u32) -> f64 {
    if traffic_erlangs.is_nan() {
        return f64::NAN;
    }
    if traffic_erlangs <= 0.0 {
        return 0.0;
    }
    if f64::from(agents) <= traffic_erlangs {
        return 1.0;
    }
    let b = erlang_b(traffic_erlangs, agents);
    c_from_b(traffic_erlangs, agents, b).clamp(0.0, 1.0)
}

/// The share of calls answered within `target_secs` (0 to 1):
/// `1 − C·exp(−(N − A)·target / AHT)`.
///
/// No traffic gives 1; an unstable queue (`agents ≤ traffic`) gives 0.
pub fn service_level(traffic_erlangs: f64, agents: u32, aht_secs: f64, target_secs: f64) -> f64 {
    let c = erlang_c(traffic_erlangs, agents);
    sl_from_c(traffic_erlangs, agents, c, aht_secs, target_secs)
}

fn sl_from_c(traffic: f64, agents: u32, c: f64, aht_secs: f64, target_secs: f64) -> f64 {
    if c.is_nan() {
        return f64::NAN;
    }
    if traffic <= 0.0 {
        return 1.0;
    }
    let spare = f64::from(agents) - traffic;
    if spare <= 0.0 {
        return 0.0;
    }
    (1.0 - c * (-spare * target_secs / aht_secs).exp()).clamp(0.0, 1.0)
}

/// The average speed of answer in seconds over all calls (those answered at
/// once count as 0): `C·AHT / (N − A)`.
///
/// No traffic gives 0; an unstable queue gives infinity.
pub fn asa(traffic_erlangs: f64, agents: u32, aht_secs: f64) -> f64 {
    let c = erlang_c(traffic_erlangs, agents);
    asa_from_c(traffic_erlangs, agents, c, aht_secs)
}

fn asa_from_c(traffic: f64, agents: u32, c: f64, aht_secs: f64) -> f64 {
    if c.is_nan() {
        return f64::NAN;
    }
    if traffic <= 0.0 {
        return 0.0;
    }
    let spare = f64::from(agents) - traffic;
    if spare <= 0.0 {
        return f64::INFINITY;
    }
    c * aht_secs / spare
}

/// The staff one interval needs, and the service it gets with that staff.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Staffing {
    /// Agents on the phones (before shrinkage: breaks, training, absence).
    pub agents: u32,
    /// Offered load: calls × AHT / interval length.
    pub traffic_erlangs: f64,
    /// Erlang C: the probability that a call waits at all.
    pub prob_wait: f64,
    /// Share of calls answered within the target time (0 to 1).
    pub service_level: f64,
    /// Average speed of answer over all calls, in seconds.
    pub asa_secs: f64,
    /// Traffic divided by agents (0 to 1); 0 when there are no agents.
    pub occupancy: f64,
}

/// Why a staffing question has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaffingError {
    #[error("{name} must be {rule}, got {value}")]
    InvalidInput {
        name: &'static str,
        rule: &'static str,
        value: f64,
    },
    #[error("no agent count up to {MAX_AGENTS} meets the target")]
    Unreachable,
}

/// The search for [`agents_required`] stops here: a single queue of more
/// agents than this is outside what this model is for.
pub const MAX_AGENTS: u32 = 100_000;

fn check(
    name: &'static str,
    rule: &'static str,
    value: f64,
    ok: bool,
) -> Result<(), StaffingError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(StaffingError::InvalidInput { name, rule, value })
    }
}

/// The smallest number of agents that answers `target_sl` (0 to 1, e.g. 0.8)
/// of `calls_per_interval` within `target_secs`, with calls of `aht_secs`
/// average handle time arriving over `interval_secs`, and, when
/// `max_occupancy` is given (0 to 1, e.g. 0.85), keeps occupancy at or under
/// it.
///
/// The answer is always a stable queue (more agents than Erlangs of traffic),
/// even for a target of 0. No calls need no agents. The search walks up from the first stable agent
/// count, one Erlang B step per candidate, and gives up at [`MAX_AGENTS`].
pub fn agents_required(
    calls_per_interval: f64,
    interval_secs: f64,
    aht_secs: f64,
    target_sl: f64,
    target_secs: f64,
    max_occupancy: Option<f64>,
) -> Result<Staffing, StaffingError> {
    check(
        "calls per interval",
        "finite and ≥ 0",
        calls_per_interval,
        calls_per_interval >= 0.0,
    )?;
    check(
        "interval length",
        "finite and > 0 seconds",
        interval_secs,
        interval_secs > 0.0,
    )?;
    check("AHT", "finite and > 0 seconds", aht_secs, aht_secs > 0.0)?;
    check(
        "target service level",
        "in [0, 1)",
        target_sl,
        (0.0..1.0).contains(&target_sl),
    )?;
    check(
        "target answer time",
        "finite and ≥ 0 seconds",
        target_secs,
        target_secs >= 0.0,
    )?;
    if let Some(occ) = max_occupancy {
        check(
            "maximum occupancy",
            "in (0, 1]",
            occ,
            occ > 0.0 && occ <= 1.0,
        )?;
    }

    let traffic = calls_per_interval * aht_secs / interval_secs;
    if !traffic.is_finite() {
        return Err(StaffingError::InvalidInput {
            name: "offered traffic",
            rule: "finite",
            value: traffic,
        });
    }
    if traffic == 0.0 {
        return Ok(Staffing {
            agents: 0,
            traffic_erlangs: 0.0,
            prob_wait: 0.0,
            service_level: 1.0,
            asa_secs: 0.0,
            occupancy: 0.0,
        });
    }
    if traffic >= f64::from(MAX_AGENTS) {
        return Err(StaffingError::Unreachable);
    }

    // The first stable count: the smallest N with N > A.
    let first = traffic.floor() as u32 + 1;
    let mut b = erlang_b(traffic, first);
    let mut n = first;
    loop {
        let c = c_from_b(traffic, n, b).clamp(0.0, 1.0);
        let sl = sl_from_c(traffic, n, c, aht_secs, target_secs);
        let occupancy = traffic / f64::from(n);
        let occupancy_ok = max_occupancy.is_none_or(|max| occupancy <= max);
        if sl >= target_sl && occupancy_ok {
            return Ok(Staffing {
                agents: n,
                traffic_erlangs: traffic,
                prob_wait: c,
                service_level: sl,
                asa_secs: asa_from_c(traffic, n, c, aht_secs),
                occupancy,
            });
        }
        if n >= MAX_AGENTS {
            return Err(StaffingError::Unreachable);
        }
        n += 1;
        b = erlang_b_step(traffic, n, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn erlang_b_matches_published_tables() {
        // Erlang B tables: 10 E on 10 circuits blocks 21.46 %, on 15 circuits
        // 3.65 %; 5 E on 10 circuits blocks 1.84 %.
        close(erlang_b(10.0, 10), 0.2146, 5e-4);
        close(erlang_b(10.0, 15), 0.0365, 5e-4);
        close(erlang_b(5.0, 10), 0.0184, 5e-4);
    }

    /// The classic worked example of contact-centre planning: 100 calls in
    /// 30 minutes with an AHT of 3 minutes is 10 Erlangs; with 11 agents a call
    /// waits with probability 68.21 % and 39.0 % are answered in 20 s; the
    /// 80/20 target needs 14 agents, who answer 88.8 % in 20 s with a
    /// probability of waiting of 17.41 %, an ASA of 7.8 s and 71.4 % occupancy.
    #[test]
    fn classic_worked_example() {
        close(erlang_c(10.0, 11), 0.6821, 5e-4);
        close(service_level(10.0, 11, 180.0, 20.0), 0.390, 1e-3);

        let s = agents_required(100.0, 1800.0, 180.0, 0.8, 20.0, None).unwrap();
        assert_eq!(s.agents, 14);
        close(s.traffic_erlangs, 10.0, 1e-12);
        close(s.prob_wait, 0.1741, 5e-4);
        close(s.service_level, 0.888, 1e-3);
        close(s.asa_secs, 7.8, 0.05);
        close(s.occupancy, 10.0 / 14.0, 1e-12);

        // 13 agents fall short of 80 % (79.6 %): the search did not stop late.
        assert!(service_level(10.0, 13, 180.0, 20.0) < 0.8);
    }

    #[test]
    fn occupancy_cap_can_add_agents() {
        // 100 E with 80/20 needs 105 agents at 95 % occupancy; a cap of
        // 85 % needs ceil(100 / 0.85) = 118.
        let free = agents_required(2000.0, 1800.0, 90.0, 0.8, 20.0, None).unwrap();
        assert!(free.occupancy > 0.85, "{free:?}");
        let capped = agents_required(2000.0, 1800.0, 90.0, 0.8, 20.0, Some(0.85)).unwrap();
        assert_eq!(capped.agents, 118);
        assert!(capped.occupancy <= 0.85);
        assert!(capped.service_level >= free.service_level);
    }

    #[test]
    fn zero_traffic() {
        assert_eq!(erlang_c(0.0, 0), 0.0);
        assert_eq!(erlang_c(0.0, 5), 0.0);
        assert_eq!(service_level(0.0, 0, 180.0, 20.0), 1.0);
        assert_eq!(asa(0.0, 3, 180.0), 0.0);
        let s = agents_required(0.0, 1800.0, 180.0, 0.8, 20.0, Some(0.85)).unwrap();
        assert_eq!(s.agents, 0);
        assert_eq!(s.service_level, 1.0);
        assert_eq!(s.occupancy, 0.0);
    }

    #[test]
    fn unstable_queue_always_waits() {
        assert_eq!(erlang_c(10.0, 10), 1.0);
        assert_eq!(erlang_c(10.0, 3), 1.0);
        assert_eq!(erlang_c(0.5, 0), 1.0);
        assert_eq!(service_level(10.0, 10, 180.0, 20.0), 0.0);
        assert_eq!(asa(10.0, 9, 180.0), f64::INFINITY);
    }

    #[test]
    fn large_queues_stay_finite() {
        // The factorial formula overflows f64 past 170 agents.
        let c = erlang_c(2000.0, 2050);
        assert!(c.is_finite() && c > 0.0 && c < 1.0, "{c}");
        let s = agents_required(40_000.0, 1800.0, 90.0, 0.9, 15.0, None).unwrap();
        assert!(s.agents > 2000 && s.agents < 2100, "{s:?}");
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(agents_required(-1.0, 1800.0, 180.0, 0.8, 20.0, None).is_err());
        assert!(agents_required(10.0, 0.0, 180.0, 0.8, 20.0, None).is_err());
        assert!(agents_required(10.0, 1800.0, 0.0, 0.8, 20.0, None).is_err());
        assert!(agents_required(10.0, 1800.0, 180.0, 1.0, 20.0, None).is_err());
        assert!(agents_required(10.0, 1800.0, 180.0, 0.8, f64::NAN, None).is_err());
        assert!(agents_required(10.0, 1800.0, 180.0, 0.8, 20.0, Some(0.0)).is_err());
        assert!(agents_required(f64::INFINITY, 1800.0, 180.0, 0.8, 20.0, None).is_err());
        assert!(erlang_c(f64::NAN, 3).is_nan());
    }

    proptest! {
        #[test]
        fn service_level_never_falls_with_more_agents(
            traffic in 0.0f64..300.0,
            agents in 0u32..400,
            aht in 10.0f64..900.0,
            target in 0.0f64..120.0,
        ) {
            let here = service_level(traffic, agents, aht, target);
            let more = service_level(traffic, agents + 1, aht, target);
            prop_assert!((0.0..=1.0).contains(&here));
            prop_assert!(more >= here - 1e-12, "{here} then {more}");
            let wait_here = erlang_c(traffic, agents);
            let wait_more = erlang_c(traffic, agents + 1);
            prop_assert!((0.0..=1.0).contains(&wait_here));
            prop_assert!(wait_more <= wait_here + 1e-12);
            // Waiting is at least as likely as being blocked in a loss system.
            prop_assert!(wait_here >= erlang_b(traffic, agents) - 1e-12);
        }

        #[test]
        fn agents_required_is_the_smallest_that_meets_the_target(
            calls in 0.0f64..2000.0,
            aht in 30.0f64..600.0,
            target_sl in 0.0f64..0.99,
            target_secs in 0.0f64..60.0,
        ) {
            let s = agents_required(calls, 1800.0, aht, target_sl, target_secs, None).unwrap();
            prop_assert!(s.service_level >= target_sl);
            prop_assert!(
                (service_level(s.traffic_erlangs, s.agents, aht, target_secs) - s.service_level).abs() < 1e-9
            );
            // One agent fewer either misses the target or is unstable.
            if s.agents > 0 && f64::from(s.agents - 1) > s.traffic_erlangs {
                prop_assert!(service_level(s.traffic_erlangs, s.agents - 1, aht, target_secs) < target_sl);
            }
        }
    }
}
