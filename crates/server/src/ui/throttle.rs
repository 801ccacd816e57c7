//! Failed sign-ins lock a user name, or a client address, out for a while.
//!
//! Failures are counted per user name (case-folded) and per client address
//! (an IPv4 address, or an IPv6 /64, since one client holds a whole /64) in
//! a window that opens at the first failure. Reaching the limit locks the
//! key until `lockout_seconds` after that failure. While locked, an attempt
//! is answered 429 with Retry-After and its password is not checked, so a
//! guesser learns nothing more. A success clears the user name's count but
//! not the address's, so that knowing one password does not buy more
//! guesses at others.
//!
//! Written here rather than with a rate-limiting crate: those (governor,
//! for one) count every request and cannot say whether a key is locked
//! without spending a cell, nor report the moment a lockout begins, which
//! the activity log must record.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::SignInLimits;

/// What a failure count is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    User(String),
    Address(IpAddr),
}

impl Key {
    /// The user name as it is counted: trimmed, case-folded, and cut to
    /// 256 characters so that a long name costs no more memory.
    pub fn user(name: &str) -> Self {
        Key::User(name.trim().to_lowercase().chars().take(256).collect())
    }

    /// The address as it is counted: IPv6 addresses by their /64.
    pub fn address(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Address(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    Key::Address(IpAddr::V6(bits.into()))
                }
            },
            v4 => Key::Address(v4),
        }
    }

    /// `user` or `address`, as the activity log records the scope.
    pub fn scope(&self) -> &'static str {
        match self {
            Key::User(_) => "user",
            Key::Address(_) => "address",
        }
    }

    /// The user name or the address (`2001:db8::/64` for IPv6).
    pub fn subject(&self) -> String {
        match self {
            Key::User(name) => name.clone(),
            Key::Address(IpAddr::V6(v6)) => format!("{v6}/64"),
            Key::Address(ip) => ip.to_string(),
        }
    }
}

/// A key that is locked out, and for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub key: Key,
    pub retry_after: Duration,
}

/// A lockout that a failure just started: recorded in the activity log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub key: Key,
    pub failures: u32,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// The failure counts of one server, bounded by `max_tracked` keys.
pub struct SignInThrottle {
    limits: SignInLimits,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl SignInThrottle {
    pub fn new(limits: SignInLimits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.limits.window_seconds)
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.limits.failures_per_user,
            Key::Address(_) => self.limits.failures_per_address,
        }
    }

    /// The longest lockout among `keys` in force at `now`, if any.
    pub fn check(&self, keys: &[Key], now: Instant) -> Option<Locked> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| {
                let until = entries.get(key)?.locked_until?;
                (until > now).then(|| Locked {
                    key: key.clone(),
                    retry_after: until - now,
                })
            })
            .max_by_key(|locked| locked.retry_after)
    }

    /// Counts a failed sign-in against every key, and returns the lockouts
    /// it started.
    pub fn failed(&self, keys: &[Key], now: Instant) -> Vec<Lockout> {
        let lockout = Duration::from_secs(self.limits.lockout_seconds);
        let window = self.window();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut started = Vec::new();
        for key in keys {
            if !entries.contains_key(key) {
                make_room(&mut entries, self.limits.max_tracked, window, now);
            }
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                window_start: now,
                locked_until: None,
            });
            let expired_lock = entry.locked_until.is_some_and(|until| until <= now);
            if expired_lock || now.duration_since(entry.window_start) >= window {
                *entry = Entry {
                    failures: 0,
                    window_start: now,
                    locked_until: None,
                };
            }
            entry.failures = entry.failures.saturating_add(1);
            if entry.locked_until.is_none() && entry.failures >= self.limit(key) {
                entry.locked_until = Some(now + lockout);
                started.push(Lockout {
                    key: key.clone(),
                    failures: entry.failures,
                    duration: lockout,
                });
            }
        }
        started
    }

    /// A successful sign-in clears the user name's count (not the
    /// address's).
    pub fn succeeded(&self, user: &Key) {
        if matches!(user, Key::User(_)) {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.remove(user);
        }
    }

    /// Keys remembered now.
    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Keeps the map under `max` keys: first forgets those whose window and
/// lockout are over, then, if it is still full (many addresses at once),
/// the one whose window opened first. That one may be an attacker's, who
/// then starts counting again; the cap keeps memory bounded, which matters
/// more than a perfect count under such a flood.
fn make_room(entries: &mut HashMap<Key, Entry>, max: usize, window: Duration, now: Instant) {
    if entries.len() < max {
        return;
    }
    entries.retain(|_, e| {
        let locked = e.locked_until.is_some_and(|until| until > now);
        locked || now.duration_since(e.window_start) < window
    });
    while entries.len() >= max {
        let Some(oldest) = entries
            .iter()
            .min_by_key(|(_, e)| e.window_start)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        entries.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(max_tracked: usize) -> SignInThrottle {
        SignInThrottle::new(SignInLimits {
            failures_per_user: 3,
            failures_per_address: 5,
            window_seconds: 60,
            lockout_seconds: 300,
            max_tracked,
        })
    }

    fn keys(user: &str, ip: &str) -> Vec<Key> {
        vec![Key::user(user), Key::address(ip.parse().unwrap())]
    }

    #[test]
    fn the_limit_locks_the_user_out_and_the_lock_ends() {
        let t = throttle(100);
        let start = Instant::now();
        let k = keys("Ana", "10.0.0.1");
        assert!(t.failed(&k, start).is_empty());
        assert!(t.failed(&k, start).is_empty());
        assert!(t.check(&k, start).is_none());
        let started = t.failed(&k, start + Duration::from_secs(1));
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].key, Key::User("ana".into()));
        assert_eq!(started[0].failures, 3);
        // Another spelling of the same name is the same key.
        let locked = t.check(&keys(" ANA ", "10.9.9.9"), start + Duration::from_secs(11));
        assert_eq!(locked.unwrap().retry_after, Duration::from_secs(290));
        // Another user from the same address is not locked yet.
        assert!(t.check(&keys("bo", "10.0.0.1"), start).is_none());
        // The lock ends; the next failure starts a new window.
        let after = start + Duration::from_secs(302);
        assert!(t.check(&k, after).is_none());
        assert!(t.failed(&k, after).is_empty());
    }

    #[test]
    fn an_address_trying_many_names_is_locked_out() {
        let t = throttle(100);
        let now = Instant::now();
        let mut started = Vec::new();
        for i in 0..5 {
            started.extend(t.failed(&keys(&format!("user{i}"), "2001:db8::1"), now));
        }
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].key.subject(), "2001:db8::/64");
        // Another address of the same /64 is the same client.
        let other = keys("new", "2001:db8::ffff:1");
        assert_eq!(t.check(&other, now).unwrap().key.scope(), "address");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t = throttle(100);
        let start = Instant::now();
        let k = keys("ana", "10.0.0.1");
        t.failed(&k, start);
        t.failed(&k, start);
        assert!(t.failed(&k, start + Duration::from_secs(61)).is_empty());
        assert!(t.check(&k, start + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn success_clears_the_user_but_not_the_address() {
        let t = throttle(100);
        let now = Instant::now();
        for i in 0..4 {
            t.failed(&keys("ana", "10.0.0.1"), now + Duration::from_millis(i));
        }
        t.succeeded(&Key::user("ana"));
        assert!(t.check(&[Key::user("ana")], now).is_none());
        // The address has 4 failures: one more locks it.
        let started = t.failed(&keys("bo", "10.0.0.1"), now);
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].key.scope(), "address");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let t = throttle(50);
        let now = Instant::now();
        for i in 0..1_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            t.failed(&[Key::address(ip)], now + Duration::from_millis(i.into()));
        }
        assert!(t.tracked() <= 50, "{}", t.tracked());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            Key::address(mapped),
            Key::Address("10.0.0.1".parse().unwrap())
        );
    }
}
