//! Whose files go first when an apply sends a fresh fleet its files with
//! the probes (see [`Prestage`](super::Prestage)).
//!
//! Every host's stream would otherwise start at once and share the link
//! (and, where hosts share CPUs, the CPUs) equally, so the host whose files
//! start the longest chain of work (the master that a cluster's init runs
//! on, which every join waits for) would get its files no sooner than
//! anyone, and the init would start only once the whole fleet had its
//! files. So the hosts whose prestaged files start the longest chain
//! *lead*: while a leader's stream is being written, the other hosts'
//! streams go one at a time; once no leader's stream is in flight, they
//! all go. One at a time rather than none, so that a leader on a slow link
//! does not leave the rest of the link idle.
//!
//! A leader counts only while its stream is being written, never while its
//! host is still connecting or waiting for one of `--parallelism`'s
//! connections: a follower that holds a connection never waits for a host
//! that needs one, so the order cannot stall a fleet larger than its
//! connections.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// The order of one run's first streams, shared by its hosts' turns.
pub struct StreamOrder {
    /// Leaders' streams being written now.
    leading: watch::Sender<usize>,
    /// The one follower's stream that may go while a leader's does.
    beside: Arc<Semaphore>,
}

/// A host's place in the order of first streams.
#[derive(Clone)]
pub enum StreamTurn {
    /// Its files start the longest chain of work: they go at once.
    Lead(Arc<StreamOrder>),
    /// They go one at a time while a leader's stream is in flight.
    Follow(Arc<StreamOrder>),
}

impl fmt::Debug for StreamTurn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamTurn::Lead(_) => "Lead",
            StreamTurn::Follow(_) => "Follow",
        })
    }
}

/// Held while a stream is written; dropping it lets the others go.
#[must_use = "the turn ends when the pass is dropped"]
pub struct TurnPass {
    _held: Held,
}

enum Held {
    /// A leader's stream in flight: counted until dropped.
    Leading(Arc<StreamOrder>),
    /// The one follower's stream beside the leaders'.
    Beside { _permit: OwnedSemaphorePermit },
    /// No leader's stream in flight: nothing to hold.
    Free,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Leading(order) = self {
            order.leading.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl StreamTurn {
    /// The turns of the hosts whose first files are sent with their probes,
    /// from the length of the chain of work each host's files start (`None`:
    /// nothing sent with its probe, no turn). Those with the longest chain
    /// lead, the others follow; when no host's chain is shorter than
    /// another's, there is no order to keep and no host gets a turn.
    pub fn assign(chains: &[Option<usize>]) -> Vec<Option<StreamTurn>> {
        let longest = chains.iter().flatten().copied().max();
        let any_shorter = chains.iter().flatten().any(|&c| Some(c) != longest);
        if !any_shorter {
            return vec![None; chains.len()];
        }
        let order = Arc::new(StreamOrder {
            leading: watch::Sender::new(0),
            beside: Arc::new(Semaphore::new(1)),
        });
        chains
            .iter()
            .map(|chain| {
                chain.map(|c| {
                    if Some(c) == longest {
                        StreamTurn::Lead(order.clone())
                    } else {
                        StreamTurn::Follow(order.clone())
                    }
                })
            })
            .collect()
    }

    /// Waits for this host's stream to be allowed to go, and says so with a
    /// pass to hold while it is written.
    pub async fn take(&self) -> TurnPass {
        let held = match self {
            StreamTurn::Lead(order) => {
                order.leading.send_modify(|n| *n += 1);
                Held::Leading(order.clone())
            }
            StreamTurn::Follow(order) => {
                let mut leading = order.leading.subscribe();
                if *leading.borrow_and_update() == 0 {
                    Held::Free
                } else {
                    tokio::select! {
                        biased;
                        _ = leading.wait_for(|&n| n == 0) => Held::Free,
                        permit = order.beside.clone().acquire_owned() => {
                            permit.map_or(Held::Free, |p| Held::Beside { _permit: p })
                        }
                    }
                }
            }
        };
        TurnPass { _held: held }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn turns(chains: &[Option<usize>]) -> Vec<&'static str> {
        StreamTurn::assign(chains)
            .iter()
            .map(|t| match t {
                Some(StreamTurn::Lead(_)) => "lead",
                Some(StreamTurn::Follow(_)) => "follow",
                None => "-",
            })
            .collect()
    }

    #[test]
    fn the_longest_chains_lead_and_the_rest_follow() {
        assert_eq!(
            turns(&[Some(4), Some(3), None, Some(4), Some(1)]),
            ["lead", "follow", "-", "lead", "follow"]
        );
    }

    #[test]
    fn equal_chains_keep_no_order() {
        assert_eq!(turns(&[Some(3), None, Some(3)]), ["-", "-", "-"]);
        assert_eq!(turns(&[None, None]), ["-", "-"]);
        assert!(turns(&[]).is_empty());
    }

    /// Whether `take` finishes within a short while (it never does when
    /// it has to wait for a turn that nothing ends).
    async fn goes(turn: &StreamTurn) -> Option<TurnPass> {
        tokio::time::timeout(Duration::from_millis(100), turn.take())
            .await
            .ok()
    }

    #[tokio::test]
    async fn followers_go_one_at_a_time_while_a_leader_streams_then_all_at_once() {
        let t = StreamTurn::assign(&[Some(2), Some(1), Some(1), Some(1)]);
        let (lead, a, b, c) = (
            t[0].clone().unwrap(),
            t[1].clone().unwrap(),
            t[2].clone().unwrap(),
            t[3].clone().unwrap(),
        );
        let leading = goes(&lead).await.expect("a leader goes at once");
        let first = goes(&a).await.expect("one follower goes beside the leader");
        assert!(goes(&b).await.is_none(), "a second follower waits");
        drop(first);
        let second = goes(&b)
            .await
            .expect("the next follower goes when the first is done");
        assert!(goes(&c).await.is_none(), "still one at a time");
        // Waiting while the leader finishes: then it goes, with no pass to hold.
        let waiting = tokio::spawn(async move { c.take().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(leading);
        let _free = tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("a waiting follower goes once no leader streams")
            .unwrap();
        assert!(goes(&a).await.is_some(), "with no leader in flight, all go");
        drop(second);
    }

    #[tokio::test]
    async fn a_leader_not_streaming_yet_holds_nobody_back() {
        let t = StreamTurn::assign(&[Some(2), Some(1), Some(1)]);
        let (lead, a, b) = (
            t[0].clone().unwrap(),
            t[1].clone().unwrap(),
            t[2].clone().unwrap(),
        );
        let _a = goes(&a)
            .await
            .expect("no leader in flight: a follower goes");
        let _b = goes(&b).await.expect("and so does the next");
        // A leader that starts later still goes at once.
        assert!(goes(&lead).await.is_some());
    }
}
