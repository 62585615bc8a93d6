//! When the SYNC flusher starts the next group commit: [`Gather`], the policy that lets one
//! fsync cover the writers the previous one just acknowledged, when that pays.
//!
//! Fsyncing back to back (as soon as bytes are unflushed) splits closed-loop writers into two
//! cohorts: when an fsync returns and wakes its waiters, the next fsync starts at once and covers
//! only the few that appended again in time; the others append while it runs and wait for the
//! one after. Each fsync then covers about half the writers and each append waits for about two
//! fsyncs. Gathering waits, after an fsync returned and woke N waiting appends, until N appends
//! arrived since, or until a short bound passes, whichever comes first. The appends that arrived
//! while the fsync ran are the other cohort; they are covered by the same next fsync, which so
//! covers everyone after a round or two. The bound is a fraction of the recent fsync time
//! (`sync_gather_fsync_ratio`), and never more than `sync_gather_max_us`.
//!
//! Gathering pays only when the woken writers come back quickly compared with an fsync. With N
//! writers that take G to append again and fsyncs of F, back to back gives N appends per 2F
//! (two cohorts, one fsync each) and gathering N per F + G: better when G < F. When the writers
//! are slow to come back — on a busy CPU, G is N times the CPU cost of an append divided by the
//! cores — gathering only idles the disk while they do, and the CPU while the fsync runs, where
//! back to back keeps both busy. When G is about F, gathering gains nothing and its wake-ups
//! cost (measured: 5 % fewer appends with 64 writer threads on an idle 2-vCPU machine whose
//! fsyncs take 150 µs). So a wait that reaches its bound before all the expected appends arrived
//! turns gathering off for the next [`BACKOFF_ROUNDS`] fsyncs, twice as many after each further
//! miss (up to [`BACKOFF_ROUNDS_MAX`]); a wait that gets them all resets that.
//!
//! N counts the waiters actually woken, not the appends the fsync covered: an append nobody
//! waits for (a broker's send with WAIT=false) will not come back, and a count of covered appends
//! taken while an append is being published can be one too high, which would make a lone writer
//! wait for an append that never comes. A writer that is alone never waits: its append is the
//! one expected. Nor does an append that arrives after the bound: the bound runs from the
//! moment the previous fsync returned, not from the append. This is MySQL's
//! `binlog_group_commit_sync_delay` / `binlog_group_commit_sync_no_delay_count` and
//! PostgreSQL's `commit_delay` / `commit_siblings`, with the delay and the count measured
//! instead of configured.
//!
//! The policy is plain arithmetic over counts and durations the caller measures, so its
//! behaviour is unit-tested without a clock.

use std::time::Duration;

/// Weight of the newest fsync in the running average of fsync times, as 1/N.
const FSYNC_AVERAGE_WEIGHT: u32 = 8;
/// Fsyncs without gathering after a wait that missed, doubled after each further miss.
pub(crate) const BACKOFF_ROUNDS: u32 = 8;
pub(crate) const BACKOFF_ROUNDS_MAX: u32 = 256;

/// What the flusher does next, while there are appends not yet covered by an fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start an fsync now.
    Flush,
    /// Sleep until `appends` arrived since the previous fsync returned, or `timeout` passes,
    /// then ask again.
    Gather { appends: u64, timeout: Duration },
}

/// The gathering policy of the SYNC flusher. Holds what the last fsyncs measured.
#[derive(Debug, Clone)]
pub(crate) struct Gather {
    /// Upper bound of any gathering wait; zero turns gathering off.
    max_wait: Duration,
    /// The bound as a fraction of the recent fsync time.
    fsync_ratio: f64,
    /// Waiting appends the last fsync completed: in a closed loop, those that will append
    /// again.
    expected: u64,
    /// Running average of fsync times; `None` before the first.
    fsync_time: Option<Duration>,
    /// Fsyncs left without gathering, after a wait that missed.
    backoff: u32,
    /// The back-off the next miss sets.
    next_backoff: u32,
    /// A wait is under way (the last answer was `Gather`).
    waiting: bool,
}

impl Gather {
    pub(crate) fn new(max_wait: Duration, fsync_ratio: f64) -> Self {
        Gather {
            max_wait,
            fsync_ratio,
            expected: 0,
            fsync_time: None,
            backoff: 0,
            next_backoff: BACKOFF_ROUNDS,
            waiting: false,
        }
    }

    /// Whether gathering is turned off (every group commit starts as soon as bytes are
    /// unflushed).
    pub(crate) fn is_off(&self) -> bool {
        self.max_wait.is_zero() || self.fsync_ratio <= 0.0
    }

    /// Records an fsync that took `took` and completed `woke` waiting appends.
    pub(crate) fn fsync_done(&mut self, woke: u64, took: Duration) {
        self.expected = woke;
        self.backoff = self.backoff.saturating_sub(1);
        self.fsync_time = Some(match self.fsync_time {
            None => took,
            Some(avg) => (avg * (FSYNC_AVERAGE_WEIGHT - 1) + took) / FSYNC_AVERAGE_WEIGHT,
        });
    }

    /// The longest a group commit may wait for appends, after the previous fsync returned.
    pub(crate) fn bound(&self) -> Duration {
        let Some(fsync) = self.fsync_time else {
            return Duration::ZERO;
        };
        fsync.mul_f64(self.fsync_ratio).min(self.max_wait)
    }

    /// What to do when appends are waiting for an fsync, `since` after the previous fsync
    /// returned and woke its waiters, `arrived` of them since then. A `Flush` ends the wait
    /// (if there was one) and is followed by the fsync.
    pub(crate) fn next(&mut self, arrived: u64, since: Duration) -> Next {
        let waited = std::mem::take(&mut self.waiting);
        if arrived >= self.expected {
            if waited {
                self.next_backoff = BACKOFF_ROUNDS;
            }
            return Next::Flush;
        }
        let bound = self.bound();
        if self.backoff > 0 || since >= bound {
            // A wait that ends with too few: the writers are slow to come back (an append after
            // the bound with no wait before it says only that the writers were idle).
            if waited {
                self.backoff = self.next_backoff;
                self.next_backoff = (self.next_backoff * 2).min(BACKOFF_ROUNDS_MAX);
            }
            return Next::Flush;
        }
        self.waiting = true;
        Next::Gather {
            appends: self.expected,
            timeout: bound - since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn policy() -> Gather {
        Gather::new(1000 * US, 0.5)
    }

    /// Records an fsync that woke `woke` appends and took `fsync_us`, then asks (appends
    /// arrived, µs since) and checks the answers.
    fn check(g: &mut Gather, woke: u64, fsync_us: u64, asks: &[(u64, u64, Next)]) {
        g.fsync_done(woke, us(fsync_us));
        for &(arrived, since_us, expect) in asks {
            assert_eq!(
                g.next(arrived, us(since_us)),
                expect,
                "{arrived} arrived {since_us} µs after an fsync that woke {woke}"
            );
        }
    }

    #[test]
    fn a_lone_writer_never_waits() {
        let mut g = policy();
        assert_eq!(g.next(1, Duration::ZERO), Next::Flush, "before any fsync");
        for _ in 0..5 {
            check(&mut g, 1, 200, &[(1, 0, Next::Flush)]);
        }
    }

    #[test]
    fn waits_for_as_many_new_appends_as_the_last_fsync_woke() {
        let mut g = policy();
        let gather = |appends, timeout_us| Next::Gather {
            appends,
            timeout: us(timeout_us),
        };
        check(
            &mut g,
            4,
            200,
            &[
                (1, 0, gather(4, 100)),
                (3, 40, gather(4, 60)),
                (4, 40, Next::Flush),
                (9, 0, Next::Flush),
            ],
        );
    }

    #[test]
    fn the_bound_runs_from_the_last_fsync_and_ends_the_wait() {
        let mut g = policy();
        check(
            &mut g,
            64,
            200,
            &[
                // Half of 200 µs: at 100 µs the fsync starts with whatever arrived.
                (
                    10,
                    99,
                    Next::Gather {
                        appends: 64,
                        timeout: US,
                    },
                ),
                (50, 100, Next::Flush),
                // An append long after the last fsync (an idle flusher) does not wait.
                (1, 50_000, Next::Flush),
            ],
        );
    }

    #[test]
    fn a_wait_that_misses_turns_gathering_off_for_a_while() {
        let mut g = policy();
        let gathers = |g: &mut Gather| {
            g.fsync_done(64, us(200));
            matches!(g.next(1, Duration::ZERO), Next::Gather { .. })
        };
        let miss = |g: &mut Gather| {
            assert!(gathers(g));
            // Not all came back within the bound (100 µs).
            assert_eq!(g.next(63, us(100)), Next::Flush);
        };
        // After a miss, BACKOFF_ROUNDS fsyncs back to back (the first is the missed one's).
        miss(&mut g);
        for _ in 1..BACKOFF_ROUNDS {
            assert!(!gathers(&mut g));
        }
        // A second miss in a row backs off twice as long.
        miss(&mut g);
        for _ in 1..2 * BACKOFF_ROUNDS {
            assert!(!gathers(&mut g));
        }
        // A wait that gets everyone resets the back-off.
        assert!(gathers(&mut g));
        assert_eq!(g.next(64, us(30)), Next::Flush);
        miss(&mut g);
        for _ in 1..BACKOFF_ROUNDS {
            assert!(!gathers(&mut g));
        }
        assert!(gathers(&mut g));
        assert_eq!(g.next(64, us(30)), Next::Flush);
        // No wait, no miss: an append after the bound says only that the writers were idle.
        g.fsync_done(64, us(200));
        assert_eq!(g.next(0, us(100)), Next::Flush);
        assert!(gathers(&mut g));
        // Misses in a row never back off longer than BACKOFF_ROUNDS_MAX.
        for _ in 0..10 {
            assert_eq!(g.next(0, us(100)), Next::Flush);
            for _ in 0..BACKOFF_ROUNDS_MAX {
                g.fsync_done(64, us(200));
            }
            assert!(matches!(g.next(0, US), Next::Gather { .. }));
        }
    }

    #[test]
    fn the_bound_follows_the_fsync_time_and_never_passes_the_maximum() {
        let mut g = policy();
        g.fsync_done(8, 200 * US);
        assert_eq!(g.bound(), 100 * US);
        // One slow fsync moves the average by an eighth of the difference.
        g.fsync_done(8, 1000 * US);
        assert_eq!(g.bound(), 150 * US);
        for _ in 0..100 {
            g.fsync_done(8, 10_000 * US);
        }
        assert_eq!(g.bound(), 1000 * US, "capped by the configured maximum");
    }

    #[test]
    fn zero_maximum_turns_gathering_off() {
        let mut g = Gather::new(Duration::ZERO, 0.5);
        assert!(g.is_off() && !policy().is_off());
        check(&mut g, 64, 200, &[(1, 0, Next::Flush)]);
        let mut g = Gather::new(1000 * US, 0.0);
        check(&mut g, 64, 200, &[(1, 0, Next::Flush)]);
    }

    /// Closed-loop writers (each re-appends as soon as its append is durable) that come back in
    /// a fixed order: counts the fsyncs the policy makes. Back to back, the writers split into
    /// cohorts; gathering brings them together in one fsync after the first rounds; writers too
    /// slow to come back make it fall back to back to back.
    #[test]
    fn closed_loop_writers_converge_on_one_fsync_per_round() {
        // Back to back (gathering off) the cohorts stay apart for good.
        let back_to_back = simulate(Gather::new(Duration::ZERO, 0.5), 64, 10, 1, 8);
        assert_eq!(back_to_back, [10, 54, 10, 54, 10, 54, 10, 54]);
        // Gathering: the first fsync covers the 10 that were there, the second waits for them
        // to come back and covers all 64, and so does every later one.
        let gathered = simulate(policy(), 64, 10, 1, 8);
        assert_eq!(gathered, [10, 64, 64, 64, 64, 64, 64, 64]);
        // Writers too slow to come back within the bound (100 µs at 3 µs each: 34 do): the wait
        // for all 64 misses, and the cohorts (34 and 30) alternate back to back until the
        // back-off is over; then the wait for the 34 woken succeeds and covers all 64 again.
        let slow = simulate(policy(), 64, 10, 3, 12);
        assert_eq!(slow, [10, 64, 34, 30, 34, 30, 34, 30, 34, 30, 64, 34]);
    }

    /// A model of `writers` closed-loop writers, `first` of which have appended when the first
    /// fsync starts. While an fsync runs, every writer not waiting for it appends; after it
    /// returns, the writers it woke append again one every `step_us`. Returns how many appends
    /// each of the first `fsyncs` fsyncs covered.
    fn simulate(mut g: Gather, writers: u64, first: u64, step_us: u64, fsyncs: usize) -> Vec<u64> {
        let mut covered = Vec::new();
        // Appended and waiting for an fsync; woken and not yet appended again.
        let mut pending = first;
        let mut returning = writers - first;
        let (mut arrived, mut since) = (0, Duration::ZERO);
        while covered.len() < fsyncs {
            match g.next(arrived, since) {
                Next::Flush => {
                    covered.push(pending);
                    g.fsync_done(pending, us(200));
                    (pending, returning) = (returning, pending);
                    (arrived, since) = (0, Duration::ZERO);
                }
                Next::Gather { appends, timeout } => {
                    assert!(appends > arrived && !timeout.is_zero());
                    assert!(returning > 0, "waits for appends that cannot come");
                    pending += 1;
                    returning -= 1;
                    arrived += 1;
                    since += us(step_us);
                }
            }
        }
        covered
    }
}
