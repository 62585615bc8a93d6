//! When the SYNC flusher starts the next group commit: [`Gather`], the policy that lets one
//! fsync cover the writers the previous one just acknowledged.
//!
//! Fsyncing back to back (as soon as bytes are unflushed) splits closed-loop writers into two
//! cohorts: when an fsync returns and wakes its waiters, the next fsync starts at once and covers
//! only the few that appended again in time; the others append while it runs and wait for the
//! one after. Each fsync then covers about half the writers and each append waits for about two
//! fsyncs. Gathering waits, after an fsync returned, until as many appends arrived since as that
//! fsync covered, or until a short bound passes, whichever comes first. The appends that arrived
//! while the fsync ran are the other cohort; they are covered by the same next fsync, which so
//! covers everyone after a round or two. The bound is a fraction of the
//! recent fsync time (`sync_gather_fsync_ratio`: waiting longer than an fsync takes would cost
//! more than a second fsync), and never more than `sync_gather_max_us`.
//!
//! A writer that is alone never waits: its append is the one the previous fsync covered. Nor
//! does an append that arrives after the bound: the bound runs from the moment the previous
//! fsync returned, not from the append. This is MySQL's `binlog_group_commit_sync_delay` /
//! `binlog_group_commit_sync_no_delay_count` and PostgreSQL's `commit_delay` /
//! `commit_siblings`, with the delay and the count measured instead of configured.
//!
//! The policy is plain arithmetic over counts and durations the caller measures, so its
//! behaviour is unit-tested without a clock.

use std::time::Duration;

/// Weight of the newest fsync in the running average of fsync times, as 1/N.
const FSYNC_AVERAGE_WEIGHT: u32 = 8;

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
    /// Appends covered by the last fsync: in a closed loop, those that will append again.
    expected: u64,
    /// Running average of fsync times; `None` before the first.
    fsync_time: Option<Duration>,
}

impl Gather {
    pub(crate) fn new(max_wait: Duration, fsync_ratio: f64) -> Self {
        Gather {
            max_wait,
            fsync_ratio,
            expected: 0,
            fsync_time: None,
        }
    }

    /// Whether gathering is turned off (every group commit starts as soon as bytes are
    /// unflushed).
    pub(crate) fn is_off(&self) -> bool {
        self.max_wait.is_zero() || self.fsync_ratio <= 0.0
    }

    /// Records an fsync that took `took` and covered `covered` append calls.
    pub(crate) fn fsync_done(&mut self, covered: u64, took: Duration) {
        self.expected = covered;
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
    /// returned and woke its waiters, `arrived` of them since then.
    pub(crate) fn next(&self, arrived: u64, since: Duration) -> Next {
        let bound = self.bound();
        if arrived >= self.expected || since >= bound {
            return Next::Flush;
        }
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

    /// Records an fsync of `covered` appends that took `fsync_us`, then asks (appends arrived,
    /// µs since) and checks the answers.
    fn check(g: &mut Gather, covered: u64, fsync_us: u64, asks: &[(u64, u64, Next)]) {
        g.fsync_done(covered, us(fsync_us));
        for &(arrived, since_us, expect) in asks {
            assert_eq!(
                g.next(arrived, us(since_us)),
                expect,
                "{arrived} arrived {since_us} µs after an fsync that covered {covered}"
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
    fn waits_for_as_many_new_appends_as_the_last_fsync_covered() {
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
                (10, 100, Next::Flush),
                // An append long after the last fsync (an idle flusher) does not wait.
                (1, 50_000, Next::Flush),
            ],
        );
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
    /// cohorts; gathering brings them together in one fsync after the first rounds.
    #[test]
    fn closed_loop_writers_converge_on_one_fsync_per_round() {
        // Back to back (gathering off) the cohorts stay apart for good.
        let back_to_back = simulate(Gather::new(Duration::ZERO, 0.5), 64, 10, 1, 8);
        assert_eq!(back_to_back, [10, 54, 10, 54, 10, 54, 10, 54]);
        // Gathering: the first fsync covers the 10 that were there, the second waits for them
        // to come back and covers all 64, and so does every later one.
        let gathered = simulate(policy(), 64, 10, 1, 8);
        assert_eq!(gathered, [10, 64, 64, 64, 64, 64, 64, 64]);
        // Writers too slow to all come back within the bound (100 µs at 3 µs each): every
        // fsync still covers more than half of them.
        let slow = simulate(policy(), 64, 10, 3, 8);
        assert!(slow[1..].iter().all(|&c| c > 32), "{slow:?}");
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
